/** The real side effects of the operations commands: the clock, where launch records live. */
import {homedir} from 'node:os'

import {launchRecordsPath} from '../ops/index.js'

export function realLaunchRecordsPath(): string {
  return launchRecordsPath(process.env, homedir())
}

export const realNow = (): Date => new Date()
