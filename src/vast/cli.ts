/**
 * Runs the real `vastai` CLI and turns what it prints into data or typed errors.
 * The CLI exits 0 on HTTP errors (the error goes to stderr, as JSON with --raw or as
 * "Failed with error N: msg"), so every call's stdout AND stderr are inspected; the exit code
 * alone proves nothing. The API key travels only in the child's environment.
 */
import {execa} from 'execa'
import type {z} from 'zod'

import {ExitCode, UserError} from '../util/errors.js'
import type {Logger} from '../util/logger.js'
import {silentLogger} from '../util/logger.js'
import {redactSecrets} from '../util/secrets.js'
import {ApiErrorSchema} from './types.js'

export interface VastRunResult {
  stdout: string
  stderr: string
  exitCode: number | null
  timedOut: boolean
  /** The binary could not be found or executed. */
  notInstalled: boolean
}

/** Runs one process; injectable so tests can fake the process layer itself. */
export type VastRunner = (
  bin: string,
  args: string[],
  options: {env: Record<string, string | undefined>; timeoutMs: number},
) => Promise<VastRunResult>

export const execaRunner: VastRunner = async (bin, args, {env, timeoutMs}) => {
  const r = await execa(bin, args, {env, extendEnv: false, timeout: timeoutMs, reject: false, stdin: 'ignore', stripFinalNewline: false})
  const code = (r as unknown as {code?: string}).code
  return {
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    exitCode: r.exitCode ?? null,
    timedOut: Boolean(r.timedOut),
    notInstalled: code === 'ENOENT' || code === 'EACCES',
  }
}

export interface VastCliOptions {
  /** Binary: this, else env.UPS_VASTAI_BIN, else `vastai` on PATH. */
  bin?: string
  /** The environment the CLI runs with (VAST_API_KEY comes from here). */
  env?: NodeJS.ProcessEnv
  logger?: Logger
  runner?: VastRunner
  sleep?: (ms: number) => Promise<void>
  /** Milliseconds since some epoch; for call durations. */
  now?: () => number
  /** Per call. */
  timeoutMs?: number
  /** Attempts for read-only calls (mutating calls get exactly one). */
  attempts?: number
  /** First retry delay; doubles each retry. */
  backoffMs?: number
}

export interface CallOptions {
  /** create/destroy/stop/start: never retried blindly. */
  mutating?: boolean
  /** Extra values to mask in the debug log (e.g. env values of a create call). */
  redact?: string[]
  timeoutMs?: number
}

export const VAST_INSTALL_HINT =
  'Install the Vast.ai CLI with `pip install vastai`, or point ups at it with --vastai-bin or UPS_VASTAI_BIN.'

/** The subcommand words of an argv, for messages (never the values). */
function commandName(args: string[]): string {
  const words: string[] = []
  for (const a of args) {
    if (a.startsWith('-') || words.length === 2) break
    words.push(a)
  }
  return `vastai ${words.join(' ')}`
}

function statusError(status: number, rawMsg: string, command: string, env: NodeJS.ProcessEnv): UserError {
  const msg = redactSecrets(rawMsg.trim() || '(no message)', env)
  const details = {status, msg, command}
  if (status === 401 || status === 403) {
    return new UserError(`${command}: Vast.ai rejected the API key (HTTP ${status}: ${msg}).`, {
      code: 'VAST_UNAUTHORIZED',
      hint: env.VAST_API_KEY
        ? 'VAST_API_KEY is set but not accepted: create a new key in the Vast.ai console (Account > API Keys) and export VAST_API_KEY=<key>.'
        : 'Set your Vast.ai API key: export VAST_API_KEY=<key> (from the Vast.ai console, Account > API Keys).',
      exitCode: ExitCode.EXTERNAL,
      details,
    })
  }
  if (status === 404) {
    return new UserError(`${command}: not found (HTTP 404: ${msg}).`, {
      code: 'VAST_NOT_FOUND',
      hint: 'Check the id: `ups instances list` shows your instances, `ups offers` the current offers.',
      exitCode: ExitCode.USAGE,
      details,
    })
  }
  if (status === 0) {
    // The client's own JSON decode of a reply failed (a garbled or cut-off 200): Vast may well have
    // done the work, so this is a passing fault to retry or check on, never a usage error.
    return new UserError(`${command}: the vastai CLI could not read Vast.ai's reply (${msg}).`, {
      code: 'VAST_API_ERROR',
      hint: 'Vast.ai sent a garbled or empty reply; this usually passes: try again in a minute.',
      exitCode: ExitCode.EXTERNAL,
      details: {...details, transient: true},
    })
  }
  const transient = status === 429 || status >= 500
  return new UserError(`${command}: Vast.ai API error (HTTP ${status}: ${msg}).`, {
    code: 'VAST_API_ERROR',
    hint: transient ? 'Vast.ai is busy or failing; try again in a minute.' : 'Check the arguments; rerun with --verbose for the call log.',
    exitCode: ExitCode.EXTERNAL,
    details: {...details, transient},
  })
}

/**
 * Finds a failure in a finished call, or returns undefined. Order matters: an error on stderr
 * wins over exit code 0; a traceback (exit 1) is classified by its last line.
 */
export function detectFailure(res: VastRunResult, args: string[], env: NodeJS.ProcessEnv = {}): UserError | undefined {
  const command = commandName(args)
  if (res.notInstalled) {
    return new UserError(`The vastai CLI was not found (${command}).`, {code: 'VAST_NOT_INSTALLED', hint: VAST_INSTALL_HINT, exitCode: ExitCode.EXTERNAL})
  }
  if (res.timedOut) {
    return new UserError(`${command} did not answer in time.`, {
      code: 'VAST_TIMEOUT',
      hint: 'Vast.ai may be slow or unreachable; try again, or check your network.',
      exitCode: ExitCode.EXTERNAL,
      details: {command, transient: true},
    })
  }
  const stderr = res.stderr
  for (const line of stderr.split('\n')) {
    const t = line.trim()
    if (!t.startsWith('{')) continue
    try {
      const parsed = ApiErrorSchema.safeParse(JSON.parse(t))
      if (parsed.success) return statusError(parsed.data.status_code, parsed.data.msg ?? '', command, env)
    } catch {
      // not JSON: keep looking
    }
  }
  const failed = /Failed with error (\d{3}):? ?(.*)/.exec(stderr)
  if (failed) return statusError(Number(failed[1]), failed[2], command, env)
  // Without --raw the client prints a reply it could not decode as the bare JSON error (HTTP 0).
  const undecodable = /^(?:Expecting value|Expecting property name|Extra data|Unterminated string|Invalid control character)\b.*\(char \d+\)$/m.exec(stderr)
  if (undecodable) return statusError(0, undecodable[0], command, env)

  const notFound = /no instance found with id (\S+)|Instance (\S+) not found or no longer exists/.exec(res.stdout + '\n' + stderr)
  if (notFound) return statusError(404, notFound[0], command, env)

  if (res.exitCode !== 0) {
    const lines = stderr.trim().split('\n').filter(Boolean)
    const last = redactSecrets(lines[lines.length - 1] ?? `exit code ${res.exitCode}`, env)
    if (/TimeoutError|timed? ?out/i.test(last)) {
      return new UserError(`${command} timed out inside the vastai CLI (${last}).`, {
        code: 'VAST_TIMEOUT',
        hint: 'Vast.ai is slow to answer; try again in a minute.',
        exitCode: ExitCode.EXTERNAL,
        details: {command, transient: true},
      })
    }
    const network = /Connection(Error|Refused)|NewConnectionError|Max retries exceeded|Name or service not known/i.test(stderr)
    const usage = res.exitCode === 2 && /usage:/i.test(stderr)
    return new UserError(
      network
        ? `${command} could not reach Vast.ai (${last}).`
        : usage
          ? `${command}: the installed vastai CLI rejected the arguments (${last}).`
          : `${command} failed with exit code ${res.exitCode} (${last}).`,
      {
        code: 'VAST_API_ERROR',
        hint: network
          ? 'Check your network connection and try again.'
          : usage
            ? 'Update it with `pip install -U vastai`.'
            : 'Rerun with --verbose to see the call log.',
        exitCode: ExitCode.EXTERNAL,
        details: {command, exitCode: res.exitCode, transient: network},
      },
    )
  }
  return undefined
}

export function isTransient(err: unknown): boolean {
  return err instanceof UserError && Boolean(err.details?.transient)
}

export function malformed(command: string, reason: string, sample: string, env: NodeJS.ProcessEnv): UserError {
  return new UserError(`${command} printed output ups cannot read: ${reason}.`, {
    code: 'VAST_MALFORMED_OUTPUT',
    hint: 'The vastai CLI may be a newer or older version than ups expects; `pip install -U vastai`, or rerun with --verbose.',
    exitCode: ExitCode.EXTERNAL,
    details: {command, sample: redactSecrets(sample.slice(0, 200), env)},
  })
}

export class VastCli {
  readonly bin: string
  private readonly env: NodeJS.ProcessEnv
  private readonly logger: Logger
  private readonly runner: VastRunner
  private readonly sleep: (ms: number) => Promise<void>
  private readonly now: () => number
  private readonly timeoutMs: number
  private readonly attempts: number
  private readonly backoffMs: number

  constructor(options: VastCliOptions = {}) {
    this.env = options.env ?? {}
    this.bin = options.bin || this.env.UPS_VASTAI_BIN || 'vastai'
    this.logger = options.logger ?? silentLogger()
    this.runner = options.runner ?? execaRunner
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)))
    this.now = options.now ?? (() => performance.now())
    this.timeoutMs = options.timeoutMs ?? 60_000
    this.attempts = Math.max(1, options.attempts ?? 3)
    this.backoffMs = options.backoffMs ?? 2_000
  }

  /** Runs `vastai ARGS`, returns stdout, throws a UserError on any detected failure. */
  async exec(args: string[], options: CallOptions = {}): Promise<{stdout: string; stderr: string}> {
    const attempts = options.mutating ? 1 : this.attempts
    const shown = this.mask(`${this.bin} ${args.map(quoteForLog).join(' ')}`, options.redact)
    for (let attempt = 1; ; attempt++) {
      const started = this.now()
      const res = await this.runner(this.bin, args, {env: this.childEnv(), timeoutMs: options.timeoutMs ?? this.timeoutMs})
      const ms = Math.round(this.now() - started)
      const failure = detectFailure(res, args, this.env)
      this.logger.debug(
        {cmd: shown, ms, attempt, exitCode: res.exitCode, ...(failure ? {error: failure.code, status: failure.details?.status} : {})},
        'vastai call',
      )
      if (!failure) return {stdout: res.stdout, stderr: res.stderr}
      if (attempt >= attempts || !isTransient(failure)) throw failure
      await this.sleep(this.backoffMs * 2 ** (attempt - 1))
    }
  }

  /** Runs a --raw call and validates its JSON. */
  async json<S extends z.ZodType>(args: string[], schema: S, options: CallOptions = {}): Promise<z.infer<S>> {
    const {stdout} = await this.exec(args, options)
    return parseJson(stdout, schema, commandName(args), this.env)
  }

  async version(): Promise<string> {
    const {stdout} = await this.exec(['--version'])
    return stdout.trim().split('\n').pop() ?? ''
  }

  private childEnv(): Record<string, string | undefined> {
    // The key reaches the child only through its environment, never its argv.
    return {...this.env}
  }

  /** Text with this client's secrets (and any key-shaped or KEY=... value) redacted. */
  redact(text: string): string {
    return redactSecrets(text, this.env)
  }

  private mask(text: string, extra: string[] = []): string {
    let out = redactSecrets(text, this.env)
    for (const v of extra) if (v && v.length >= 4) out = out.split(v).join('[REDACTED]')
    return out
  }
}

export function parseJson<S extends z.ZodType>(stdout: string, schema: S, command: string, env: NodeJS.ProcessEnv = {}): z.infer<S> {
  const text = stdout.trim()
  if (!text) throw malformed(command, 'it printed nothing', '', env)
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw malformed(command, `not JSON (${(error as Error).message})`, text, env)
  }
  const parsed = schema.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw malformed(command, `unexpected JSON at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, text, env)
  }
  return parsed.data
}

/** Debug-log quoting: multi-line values (onstart scripts) are shortened. */
function quoteForLog(arg: string): string {
  if (arg.includes('\n') || arg.length > 120) return `'<${arg.length} chars>'`
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`
}
