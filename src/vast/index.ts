/** Vast.ai: the `vastai` CLI client, offers, lifecycle waits, the onstart builder, the Provider. */
export * from './cli.js'
export * from './instances.js'
export * from './lifecycle.js'
export * from './offers.js'
export * from './onstart.js'
export * from './provider.js'
export * from './types.js'
