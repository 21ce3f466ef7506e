/**
 * The real dependencies of `ups data fetch`: Node's HTTP client, rclone through execa, the clock.
 * Kept apart from deps.ts so the data commands can be merged independently; tests pass fakes.
 */
import {execa} from 'execa'

import {createNodeHttpGet} from '../data/fetch-http.js'
import type {CommandRunner, FetchDeps} from '../data/fetch.js'

/** Runs a program, handing each stderr line to `onStderrLine` as it arrives (for progress). */
export const execaRunner: CommandRunner = {
  async run(command, args, options) {
    const child = execa(command, args, {reject: false, env: options.env, extendEnv: false, stdin: 'ignore'})
    let pending = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8')
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) options.onStderrLine?.(line)
    })
    const result = await child
    if (pending) options.onStderrLine?.(pending)
    const code = (result as {code?: string}).code
    return {
      exitCode: result.exitCode ?? (result.failed ? 1 : 0),
      stdout: String(result.stdout ?? ''),
      stderr: String(result.stderr ?? ''),
      missing: code === 'ENOENT',
    }
  },
}

export function realFetchDeps(env: NodeJS.ProcessEnv = process.env): FetchDeps {
  return {
    http: createNodeHttpGet(),
    runner: execaRunner,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    random: () => Math.random(),
    env: {...env},
    rcloneBin: env.UPS_RCLONE_BIN || 'rclone',
  }
}
