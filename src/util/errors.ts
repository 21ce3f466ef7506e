/**
 * One error class for everything a user can fix, and one table of exit codes.
 * Modules throw `UserError`; the base command prints message + hint (no stack unless --verbose)
 * and exits with the code, identically with and without --json.
 */

export const ExitCode = {
  OK: 0,
  CHECK_FAILED: 1,
  USAGE: 2,
  EXTERNAL: 3,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** What each exit code means; printed in `--help` and the README, kept in sync by a test. */
export const EXIT_CODE_MEANINGS: Record<ExitCode, string> = {
  0: 'success',
  1: 'a check failed (invalid config, corrupt data, unhealthy instance, gate failed)',
  2: 'usage error or unreadable input (bad flag, missing or unparsable file)',
  3: 'an external tool or service failed (vastai, network, W&B)',
}

export interface UserErrorOptions {
  /** Stable, module-prefixed code for machines, e.g. CONFIG_INVALID. */
  code?: string
  /** What to do next; ideally the command to run. */
  hint?: string
  exitCode?: ExitCode
  cause?: unknown
  /** Extra machine-readable details for --json. */
  details?: Record<string, unknown>
}

export class UserError extends Error {
  readonly code: string
  readonly hint?: string
  readonly exitCode: ExitCode
  readonly details?: Record<string, unknown>

  constructor(message: string, options: UserErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'UserError'
    this.code = options.code ?? 'UPS_ERROR'
    this.hint = options.hint
    this.exitCode = options.exitCode ?? ExitCode.CHECK_FAILED
    this.details = options.details
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? {hint: this.hint} : {}),
      exitCode: this.exitCode,
      ...(this.details ? {details: this.details} : {}),
    }
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError
}

/** Node's errno errors (ENOENT, EACCES, ...) as UserErrors naming the path. */
export function fsError(err: unknown, path: string, what = 'file'): UserError {
  const e = err as NodeJS.ErrnoException
  const reasons: Record<string, string> = {
    ENOENT: 'does not exist',
    EACCES: 'is not readable or writable by this user',
    EPERM: 'is not permitted',
    EISDIR: 'is a directory, not a file',
    ENOTDIR: 'has a path component that is not a directory',
    ENOSPC: 'cannot be written: the disk is full',
  }
  const reason = reasons[e?.code ?? ''] ?? `cannot be accessed (${e?.message ?? String(err)})`
  return new UserError(`The ${what} ${path} ${reason}.`, {
    code: 'FS_' + (e?.code ?? 'ERROR'),
    hint: e?.code === 'ENOENT' ? 'Check the path (it is relative to the current directory).' : undefined,
    exitCode: ExitCode.USAGE,
    cause: err,
  })
}
