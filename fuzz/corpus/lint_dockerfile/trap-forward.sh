#!/bin/sh
set -e
trap 'kill -TERM "$child"; wait "$child"' TERM INT
./migrate && sleep 2
java -jar /app.jar "$@" &
child=$!
wait "$child"
