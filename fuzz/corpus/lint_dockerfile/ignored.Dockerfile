# Expected: nothing: the shell-form CMD is a deliberate choice, ignored.
FROM alpine:3.20
# lameduck:ignore LD005 (a one-shot debug image)
CMD sleep infinity
