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

/** What each errno means for a path, and what to do about it. */
const FS_REASONS: Record<string, {reason: string; hint?: string}> = {
  ENOENT: {reason: 'does not exist', hint: 'Check the path (it is relative to the current directory).'},
  EACCES: {reason: 'is not readable or writable by this user', hint: 'Fix its permissions, or point ups at a folder you own.'},
  EPERM: {reason: 'is not permitted', hint: 'Fix its permissions, or point ups at a folder you own.'},
  EISDIR: {reason: 'is a directory, not a file'},
  ENOTDIR: {reason: 'has a path component that is not a directory'},
  EEXIST: {reason: 'already exists'},
  ENOTEMPTY: {reason: 'is a folder that is not empty'},
  ENOSPC: {reason: 'cannot be written: the disk is full', hint: 'Free space on that disk (`df -h` shows it; `ups cleanup` removes old runs and caches) or write elsewhere.'},
  EDQUOT: {reason: 'cannot be written: your disk quota is used up', hint: 'Free space within your quota (`ups cleanup` removes old runs and caches) or write elsewhere.'},
  EROFS: {reason: 'cannot be written: it is on a read-only filesystem', hint: 'Write to a writable folder instead (e.g. set checkpoint.dir, --runs-dir or the output path), or remount the disk read-write.'},
  ENAMETOOLONG: {reason: 'has a name that is too long for the filesystem (at most 255 bytes per name)', hint: 'Use a shorter file or folder name (run names and output paths included).'},
  EMFILE: {reason: 'cannot be opened: this process has too many open files', hint: 'Raise the limit (`ulimit -n 4096`) and rerun.'},
  ENFILE: {reason: 'cannot be opened: the system has too many open files', hint: 'Close other programs or raise the system limit (fs.file-max) and rerun.'},
  EXDEV: {reason: 'cannot be moved across filesystems', hint: 'Keep temporary and final paths on the same disk.'},
  ELOOP: {reason: 'has too many symbolic links (a link loop?)'},
  EBUSY: {reason: 'is busy (in use by another process)', hint: 'Wait for the other process to finish and retry.'},
  EIO: {reason: 'could not be read or written: an I/O error on the device', hint: 'Check the disk (dmesg) and retry; the file may be damaged.'},
  EFBIG: {reason: 'cannot grow: the file is too large for the filesystem'},
}

/** True for Node's errno errors (`code` like ENOSPC plus a syscall). */
export function isErrnoError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | undefined
  return typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.syscall === 'string'
}

/** Node's errno errors (ENOENT, ENOSPC, EROFS, ...) as UserErrors naming the path and the fix. */
export function fsError(err: unknown, path: string, what = 'file'): UserError {
  const e = err as NodeJS.ErrnoException
  const known = FS_REASONS[e?.code ?? '']
  const reason = known?.reason ?? `cannot be accessed (${e?.message ?? String(err)})`
  return new UserError(`The ${what} ${path} ${reason}.`, {
    code: 'FS_' + (e?.code ?? 'ERROR'),
    hint: known?.hint,
    exitCode: ExitCode.USAGE,
    cause: err,
    details: {path, ...(e?.code ? {errno: e.code} : {})},
  })
}

/** An uncaught errno error (ENOSPC during a write, EROFS on mkdir, ...) as a UserError; undefined for anything else. */
/** The error as a UserError when it is one or a filesystem error (errnoUserError), else undefined. */
export function knownUserError(err: unknown): UserError | undefined {
  return isUserError(err) ? err : errnoUserError(err)
}

export function errnoUserError(err: unknown): UserError | undefined {
  if (!isErrnoError(err)) return undefined
  return err.path ? fsError(err, err.path, 'path') : fsError(err, `(during ${err.syscall})`, 'file being accessed')
}
