// Ships N numbered lines through winston-loki, then flushes and exits.
// Usage: node winston.js URL TOKEN N protobuf|json
// Exit code 0 only when every batch was answered with success.
'use strict'
const { createLogger } = require('winston')
const LokiTransport = require('winston-loki')

const [url, token, n, mode] = process.argv.slice(2)
let failed = false
const loki = new LokiTransport({
  host: url,
  headers: { Authorization: `Bearer ${token}` },
  labels: { app: `winston-${mode}` },
  json: mode === 'json',
  batching: true,
  interval: 0.2,
  gracefulShutdown: false,
  onConnectionError: (err) => {
    failed = true
    console.error(`winston-loki: ${err}`)
  }
})
const logger = createLogger({ transports: [loki] })
for (let i = 1; i <= Number(n); i++) {
  logger.info(`winston ${mode} line seq=${String(i).padStart(8, '0')}`)
}
loki.flush().then(() => {
  loki.close()
  process.exit(failed ? 2 : 0)
})
