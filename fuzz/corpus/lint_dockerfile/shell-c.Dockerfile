# Expected: LD006 (exec form, but sh -c runs the app as a child; fixable),
# and LD005 on the shell-form CMD with a variable (not fixable).
FROM node:20-slim
WORKDIR /app
COPY . .
ENTRYPOINT ["sh", "-c", "npm run migrate && node server.js"]
CMD node server.js --port $PORT
