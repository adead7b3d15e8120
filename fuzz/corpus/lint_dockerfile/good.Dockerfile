# Expected: nothing. Exec form everywhere; the official nginx image stops
# with SIGQUIT; lameduck is PID 1.
FROM nginx:1.27 AS web
COPY site/ /usr/share/nginx/html/
CMD ["nginx", "-g", "daemon off;"]

FROM eclipse-temurin:21-jre
COPY --from=ghcr.io/example/lameduck /usr/local/bin/lameduck /usr/local/bin/lameduck
ENTRYPOINT ["lameduck", "run", "--until-quiet", "2s", "--port", "8080", "--"]
CMD ["java", "-jar", "/app.jar"]
