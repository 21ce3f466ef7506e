import {Command, Flags} from '@oclif/core'

import {ExitCode, UserError, errnoUserError, isUserError} from '../util/errors.js'
import {createLogger, type Logger} from '../util/logger.js'
import {redactSecrets} from '../util/secrets.js'

/**
 * Every ups command extends this: `--json` and `--verbose` everywhere, one error format, and
 * the same exit code with and without `--json` (oclif's own catch ignores a CLIError's exit there).
 */
export abstract class BaseCommand extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    verbose: Flags.boolean({
      description: 'Show debug logs, and stack traces on errors.',
      helpGroup: 'GLOBAL',
    }),
  }

  private cachedLogger?: Logger

  protected get verbose(): boolean {
    return this.argv.includes('--verbose')
  }

  /** Human-readable log lines on stderr (stdout carries results). */
  protected get logger(): Logger {
    this.cachedLogger ??= createLogger({level: this.verbose ? 'debug' : this.jsonEnabled() ? 'warn' : 'info'})
    return this.cachedLogger
  }

  /** Writes a line to stderr, also under --json (progress and warnings never pollute stdout). */
  protected note(message: string): void {
    process.stderr.write(redactSecrets(message) + '\n')
  }

  async catch(err: Error & {oclif?: {exit?: number}; code?: string}): Promise<void> {
    // this.exit(n) throws an ExitError: let oclif finish it.
    if (err?.code === 'EEXIT') throw err
    const userError = toUserError(err)
    process.exitCode = userError.exitCode
    if (this.jsonEnabled()) {
      const json = userError.toJSON()
      if (this.verbose && err.stack) json.stack = redactSecrets(err.stack)
      this.logJson({error: JSON.parse(redactSecrets(JSON.stringify(json)))})
      return
    }
    process.stderr.write(formatError(userError, this.verbose ? err : undefined))
  }
}

/** Maps anything thrown to a UserError: our own, oclif's parse errors (usage, exit 2), or a bug. */
export function toUserError(err: unknown): UserError {
  if (isUserError(err)) return err
  const e = err as Error & {oclif?: {exit?: number}; code?: string}
  if (e?.oclif && typeof e.oclif.exit === 'number') {
    const message = (e.message ?? String(err)).replace(/^Error: /, '').trim()
    return new UserError(message, {
      code: 'USAGE',
      hint: 'See --help for the arguments and flags this command takes.',
      exitCode: e.oclif.exit === 1 ? ExitCode.CHECK_FAILED : ExitCode.USAGE,
      cause: err,
    })
  }
  // A filesystem error no module caught (ENOSPC, EROFS, ENAMETOOLONG, ...): name the path and the fix.
  const fs = errnoUserError(err)
  if (fs) return fs
  return new UserError(`Unexpected internal error: ${e?.message ?? String(err)}`, {
    code: 'INTERNAL',
    hint: 'Rerun with --verbose to see the stack trace, and report it with the command you ran.',
    exitCode: ExitCode.CHECK_FAILED,
    cause: err,
  })
}

/** One paragraph: the problem, then what to do; the stack only when asked for. */
export function formatError(error: UserError, stackOf?: Error): string {
  const lines = [`Error: ${error.message}`]
  if (error.hint) lines.push(`Hint: ${error.hint}`)
  if (stackOf?.stack) lines.push('', stackOf.stack)
  return redactSecrets(lines.join('\n')) + '\n'
}
