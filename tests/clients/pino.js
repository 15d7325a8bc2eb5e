// Ships N numbered lines through pino-loki (a pino transport in a worker thread), then ends
// the transport, which flushes, and exits.
// Usage: node pino.js URL TOKEN N
'use strict'
const pino = require('pino')

const [url, token, n] = process.argv.slice(2)
const transport = pino.transport({
  target: 'pino-loki',
  options: {
    host: url,
    headers: { Authorization: `Bearer ${token}` },
    labels: { app: 'pino' },
    batching: true,
    interval: 0.2,
    silenceErrors: false
  }
})
const logger = pino(transport)
for (let i = 1; i <= Number(n); i++) {
  logger.info(`pino line seq=${String(i).padStart(8, '0')}`)
}
transport.on('close', () => process.exit(0))
transport.end()
