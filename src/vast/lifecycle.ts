/**
 * Waiting on instances: for a status (created -> loading -> running), for a line in the log,
 * and following the log. Clock and sleep are parameters so tests drive time.
 */
import {ExitCode, UserError} from '../util/errors.js'
import {isTransient} from './cli.js'
import type {Provider} from './provider.js'
import type {Instance} from './types.js'

export interface WaitOptions {
  timeoutMs: number
  intervalMs?: number
  sleep: (ms: number) => Promise<void>
  /** Milliseconds; the same clock `sleep` advances. */
  now: () => number
  onPoll?: (instance: Instance) => void
}

/** Statuses an instance does not come back from by waiting. */
export const TERMINAL_STATUSES = ['exited', 'offline', 'stopped'] as const

function gone(id: number, cause: unknown): UserError {
  return new UserError(`Instance ${id} disappeared while ups was waiting for it.`, {
    code: 'VAST_INSTANCE_GONE',
    hint: 'It was destroyed, or the host removed it; `ups instances list` shows what is left.',
    exitCode: ExitCode.CHECK_FAILED,
    cause,
    details: {id},
  })
}

/** Polls until the instance's status is one of `target`; transient API errors are ridden out. */
export async function waitForStatus(provider: Provider, id: number, target: string | string[], options: WaitOptions): Promise<Instance> {
  const targets = Array.isArray(target) ? target : [target]
  const interval = options.intervalMs ?? 10_000
  const deadline = options.now() + options.timeoutMs
  let last: Instance | undefined
  for (;;) {
    try {
      last = await provider.show(id)
      options.onPoll?.(last)
      if (last.status && targets.includes(last.status)) return last
      const terminal = (TERMINAL_STATUSES as readonly string[]).filter((s) => !targets.includes(s))
      if (last.status && terminal.includes(last.status)) {
        throw new UserError(`Instance ${id} is ${last.status}, not ${targets.join('/')}${last.statusMsg ? ` (${last.statusMsg})` : ''}.`, {
          code: 'VAST_INSTANCE_FAILED',
          hint: `Look at its log: \`ups instances logs ${id}\`.`,
          exitCode: ExitCode.CHECK_FAILED,
          details: {id, status: last.status},
        })
      }
    } catch (error) {
      if (error instanceof UserError && error.code === 'VAST_NOT_FOUND') throw gone(id, error)
      if (!isTransient(error)) throw error
    }
    if (options.now() >= deadline) {
      const status = last?.status ?? 'unknown'
      throw new UserError(
        `Instance ${id} did not reach ${targets.join('/')} within ${Math.round(options.timeoutMs / 1000)} s (last status: ${status}${last?.statusMsg ? `, ${last.statusMsg}` : ''}).`,
        {
          code: 'VAST_WAIT_TIMEOUT',
          hint: `Look at \`ups instances logs ${id}\`; destroy it with \`ups instances destroy ${id}\` if it is stuck.`,
          exitCode: ExitCode.CHECK_FAILED,
          details: {id, lastStatus: last?.status ?? null},
        },
      )
    }
    await options.sleep(interval)
  }
}

/** Polls the log until a line matches; returns the line. */
export async function waitForLogLine(provider: Provider, id: number, pattern: RegExp, options: WaitOptions & {tail?: number}): Promise<string> {
  const interval = options.intervalMs ?? 10_000
  const deadline = options.now() + options.timeoutMs
  for (;;) {
    try {
      const lines = await provider.logs(id, {tail: options.tail ?? 500})
      const hit = lines.find((l) => pattern.test(l))
      if (hit !== undefined) return hit
    } catch (error) {
      if (error instanceof UserError && error.code === 'VAST_NOT_FOUND') throw gone(id, error)
      if (!isTransient(error)) throw error
    }
    if (options.now() >= deadline) {
      throw new UserError(`Instance ${id}'s log showed no line matching ${pattern} within ${Math.round(options.timeoutMs / 1000)} s.`, {
        code: 'VAST_WAIT_TIMEOUT',
        hint: `Read the log with \`ups instances logs ${id}\`.`,
        exitCode: ExitCode.CHECK_FAILED,
        details: {id, pattern: String(pattern)},
      })
    }
    await options.sleep(interval)
  }
}

/**
 * The lines of `next` not already seen at the end of `prev` (logs are fetched as a sliding tail,
 * so the overlap is the longest suffix of prev that starts next).
 */
export function newLogLines(prev: string[], next: string[]): string[] {
  for (let k = Math.min(prev.length, next.length); k > 0; k--) {
    let same = true
    for (let i = 0; i < k; i++) {
      if (prev[prev.length - k + i] !== next[i]) {
        same = false
        break
      }
    }
    if (same) return next.slice(k)
  }
  return next
}

export interface FollowOptions {
  sleep: (ms: number) => Promise<void>
  intervalMs?: number
  tail?: number
  onLines: (lines: string[]) => void
  /** Stop after this many polls (tests); default: until the instance stops running. */
  maxPolls?: number
}

/** Prints the log as it grows; ends when the instance is no longer running (or gone). */
export async function followLogs(provider: Provider, id: number, options: FollowOptions): Promise<{polls: number; lines: number}> {
  let prev: string[] = []
  let printed = 0
  for (let polls = 1; ; polls++) {
    const lines = await provider.logs(id, {tail: options.tail ?? 1000})
    const fresh = newLogLines(prev, lines)
    if (fresh.length > 0) options.onLines(fresh)
    printed += fresh.length
    prev = lines
    if (options.maxPolls !== undefined && polls >= options.maxPolls) return {polls, lines: printed}
    let status: string | null
    try {
      status = (await provider.show(id)).status
    } catch (error) {
      if (error instanceof UserError && error.code === 'VAST_NOT_FOUND') return {polls, lines: printed}
      throw error
    }
    if (status && (TERMINAL_STATUSES as readonly string[]).includes(status)) return {polls, lines: printed}
    await options.sleep(options.intervalMs ?? 5_000)
  }
}

export interface DestroyRetryOptions {
  sleep: (ms: number) => Promise<void>
  /** Tries in all (default 4). */
  attempts?: number
  /** First wait; doubles after each failed try (default 5 s: 5, 10, 20 s). */
  backoffMs?: number
}

export interface DestroyOutcome {
  destroyed: boolean
  attempts: number
  /** The last failure, when not destroyed. */
  error?: string
}

/** Failures that waiting does not fix. */
const HOPELESS = new Set(['VAST_UNAUTHORIZED', 'VAST_NOT_INSTALLED', 'VAST_BAD_ID'])

/**
 * Destroys an instance that must not be left billing (a rollback, an extra rented by mistake):
 * retries with exponential backoff, counts "not found" as done, and before giving up asks
 * whether the instance is gone anyway (a destroy whose answer was lost). Never throws a UserError.
 */
export async function destroyWithRetry(provider: Provider, id: number, options: DestroyRetryOptions): Promise<DestroyOutcome> {
  const attempts = Math.max(1, options.attempts ?? 4)
  let wait = options.backoffMs ?? 5_000
  let error = ''
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      await provider.destroy(id)
      return {destroyed: true, attempts: attempt}
    } catch (e) {
      if (!(e instanceof UserError)) throw e
      if (e.code === 'VAST_NOT_FOUND') return {destroyed: true, attempts: attempt}
      error = e.message
      if (HOPELESS.has(e.code)) return {destroyed: false, attempts: attempt, error}
    }
    if (attempt < attempts) {
      await options.sleep(wait)
      wait *= 2
    }
  }
  try {
    await provider.show(id)
  } catch (e) {
    if (e instanceof UserError && e.code === 'VAST_NOT_FOUND') return {destroyed: true, attempts}
  }
  return {destroyed: false, attempts, error}
}
