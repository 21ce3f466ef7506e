/** The real side effects for the tracking module (W&B over the network, the wall clock). */
import {setTimeout as delay} from 'node:timers/promises'

import type {WandbDeps} from '../tracking/index.js'
import type {Logger} from '../util/logger.js'

export function realWandbDeps(logger?: Logger): WandbDeps {
  return {
    env: process.env,
    fetch: (input, init) => fetch(input, init),
    now: () => new Date(),
    sleep: async (ms) => {
      await delay(ms)
    },
    logger,
  }
}
