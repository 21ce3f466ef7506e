/**
 * What every Vast.ai command shares: the --vastai-bin flag, the instance-id argument, building
 * the real provider, and the yes/no prompt for destroy.
 */
import {Args, Flags} from '@oclif/core'
import {homedir} from 'node:os'
import {createInterface} from 'node:readline/promises'

import type {Logger} from '../util/logger.js'
import {launchesPath, VastCli, VastProvider} from '../vast/index.js'

export const vastFlags = {
  'vastai-bin': Flags.string({
    description: 'The vastai CLI to run (default: UPS_VASTAI_BIN, else `vastai` on PATH).',
    helpGroup: 'VAST',
  }),
}

export const instanceIdArg = {
  id: Args.integer({description: 'Vast.ai instance id (see `ups instances list`).', required: true, min: 1}),
}

/** The real provider: the vastai CLI with this process's environment (VAST_API_KEY) and logger. */
export function realVastProvider(flags: {'vastai-bin'?: string}, logger: Logger): VastProvider {
  return new VastProvider(new VastCli({bin: flags['vastai-bin'], env: process.env, logger}))
}

export function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Asks on the terminal (prompt on stderr so stdout stays clean). */
export async function askYesNo(question: string): Promise<boolean> {
  const rl = createInterface({input: process.stdin, output: process.stderr})
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim())
  } finally {
    rl.close()
  }
}

/** A decimal-number flag (oclif's integer flag rejects 0.95). */
export const floatFlag = Flags.custom<number>({
  async parse(input) {
    const n = Number(input)
    if (input.trim() === '' || !Number.isFinite(n)) throw new Error(`Expected a number but received: ${input}`)
    return n
  },
})

/** Where this user's launch records live ($UPS_HOME, else ~/.ups). */
export function realLaunchesFile(): string {
  return launchesPath(process.env, homedir())
}
