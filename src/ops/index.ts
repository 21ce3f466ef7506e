/** Operations: health thresholds, monitor, watchdog, recover, and preserving evidence. */
export * from './health.js'
export * from './log-parse.js'
export * from './monitor.js'
export * from './preserve.js'
export * from './recover.js'
export * from './watchdog.js'
