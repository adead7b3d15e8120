// Drives eureka-js-client, unmodified, for lameduck registry's tests.
//
// Usage: node js_client.js EUREKA_URL APP INSTANCE_ID   (NODE_PATH=…/node_modules)
//
// Registers, heartbeats and fetches (full first, then delta: shouldUseDelta)
// every 200 ms, against the /eureka/v2/apps/ path the client uses by default.
// Reads commands on stdin, "SEQ COMMAND", and answers each with one JSON line
// carrying the same "seq":
//
//   apps  -> {"instances": [{app, id, status}, ...]}  the client's cache of UP instances
//   stop  -> the client stops: it deregisters (cancel) and the script exits
'use strict';

const readline = require('readline');
const { Eureka } = require('eureka-js-client');

const [url, app, instanceId] = process.argv.slice(2);
const server = new URL(url);
const quiet = { debug() {}, info() {}, warn() {}, error: (...a) => console.error(...a) };

const client = new Eureka({
  logger: quiet,
  shouldUseDelta: true,
  instance: {
    app,
    instanceId,
    hostName: '127.0.0.1',
    ipAddr: '127.0.0.1',
    port: { $: 8080, '@enabled': true },
    vipAddress: app.toLowerCase(),
    statusPageUrl: 'http://127.0.0.1:8080/info',
    dataCenterInfo: {
      '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo',
      name: 'MyOwn',
    },
  },
  eureka: {
    host: server.hostname,
    port: Number(server.port),
    heartbeatInterval: 200,
    registryFetchInterval: 200,
    maxRetries: 0,
  },
});

function view() {
  const out = [];
  for (const name of Object.keys(client.cache.app)) {
    for (const i of client.cache.app[name]) {
      out.push({ app: i.app, id: i.instanceId, status: i.status });
    }
  }
  return out;
}

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

client.start((err) => {
  if (err) console.error('start failed:', err.message);
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const space = line.indexOf(' ');
  const seq = Number(line.slice(0, space));
  const cmd = line.slice(space + 1).trim();
  if (cmd === 'apps') {
    reply({ seq, instances: view() });
  } else if (cmd === 'stop') {
    client.stop((err) => {
      reply({ seq, error: err ? err.message : null });
      process.exit(err ? 1 : 0);
    });
  } else {
    reply({ seq, error: `unknown command ${cmd}` });
  }
});
