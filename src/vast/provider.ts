/**
 * The provider interface ops/pipeline code depends on, and its Vast.ai implementation over the
 * `vastai` CLI. Only this folder knows Vast's CLI syntax and JSON.
 */
import {ExitCode, UserError} from '../util/errors.js'
import {VastCli, malformed, parseJson} from './cli.js'
import {type OfferFilters, type OfferOrder, OFFER_ORDERS, buildOfferQuery} from './offers.js'
import {
  CreateResultSchema,
  GoneInstanceSchema,
  type Instance,
  type Offer,
  RawInstanceListSchema,
  RawInstanceSchema,
  RawOfferListSchema,
  toInstance,
  toOffer,
} from './types.js'

export interface SearchRequest {
  filters: OfferFilters
  order?: OfferOrder
  /** Passed to the provider; results may still be filtered further. */
  limit?: number
}

export interface CreateInstanceRequest {
  offerId: number
  image: string
  diskGb: number
  /** Set in the container's environment; the place for secrets (never the onstart text). */
  env?: Record<string, string>
  /** The onstart script (Vast limit: 4048 characters). */
  onstart?: string
  label?: string
  /** Direct SSH (a public port) instead of Vast's proxy. */
  direct?: boolean
}

export interface Provider {
  readonly name: string
  search(request: SearchRequest): Promise<Offer[]>
  /**
   * Attempted exactly once (a lost answer could mean a second paid instance); after a failure
   * the instance may still exist: look for its label (see rentInstance).
   */
  create(request: CreateInstanceRequest): Promise<{id: number}>
  /** Throws VAST_NOT_FOUND when the instance does not exist (any more). */
  show(id: number): Promise<Instance>
  list(): Promise<Instance[]>
  stop(id: number): Promise<void>
  start(id: number): Promise<void>
  destroy(id: number): Promise<void>
  logs(id: number, options?: {tail?: number}): Promise<string[]>
  sshUrl(id: number): Promise<string>
  /**
   * Copies a folder off a running instance into a local folder (`vastai copy ID:PATH DIR`,
   * rsync underneath). Optional: providers without it cannot save checkpoints.
   */
  copyFrom?(id: number, remotePath: string, localDir: string): Promise<void>
  /**
   * Copies a local file or folder onto a running instance (`vastai copy PATH ID:REMOTE`, rsync's
   * trailing-slash rules: `dir/` sends the contents). Only the last part of REMOTE is created.
   */
  copyTo?(id: number, localPath: string, remotePath: string): Promise<void>
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Vast's --env takes docker-style options in one string: `-e K=V -e K2=V2`. */
export function formatEnvOption(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!ENV_NAME.test(k)) {
        throw new UserError(`Environment variable name "${k}" is not valid.`, {code: 'VAST_BAD_ENV', exitCode: ExitCode.USAGE})
      }
      // Shell syntax too: the value must stay one literal word wherever the option is split.
      if (/[\s'"`$\\;&|<>()\u0000-\u001f\u007f]/.test(v) || v === '') {
        throw new UserError(`The value of environment variable ${k} is empty or has spaces, quotes, control characters or shell syntax ($ \` ; & | < > ( ) \\), which Vast's --env cannot carry safely.`, {
          code: 'VAST_BAD_ENV',
          exitCode: ExitCode.USAGE,
        })
      }
      return `-e ${k}=${v}`
    })
    .join(' ')
}

/** The argv of a create call (also what `ups launch --dry-run` shows, with env values masked). */
export function createInstanceArgs(req: CreateInstanceRequest, options: {maskEnv?: boolean} = {}): string[] {
  const args = ['create', 'instance', String(req.offerId), '--image', req.image, '--disk', String(req.diskGb)]
  const env = req.env ?? {}
  if (Object.keys(env).length > 0) {
    const shown = options.maskEnv ? Object.fromEntries(Object.keys(env).map((k) => [k, '***'])) : env
    args.push('--env', formatEnvOption(shown))
  }
  if (req.onstart) args.push('--onstart-cmd', req.onstart)
  if (req.label) args.push('--label', req.label)
  if (req.direct) args.push('--ssh', '--direct')
  // The client retries 429/502/503/504 and dropped connections by itself, the create included:
  // one lost answer would rent twice. One try; ups checks by label when the outcome is unknown.
  args.push('--retry', '1', '--raw')
  return args
}

/**
 * Per-call limit for create: over the client's own 120 s request timeout, so with --retry 1 the
 * client gives up (and says so) before ups kills it.
 */
export const CREATE_TIMEOUT_MS = 150_000

function checkId(id: number): string {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new UserError(`"${id}" is not a Vast.ai instance id (a positive integer).`, {code: 'VAST_BAD_ID', exitCode: ExitCode.USAGE})
  }
  return String(id)
}

function checkCopyPaths(remotePath: string, localPath: string): void {
  if (!remotePath.startsWith('/') || remotePath.includes(':') || localPath.includes(':')) {
    throw new UserError(`Cannot copy between ${localPath} and ${remotePath}: vastai copy needs an absolute remote path and paths without ":".`, {
      code: 'VAST_BAD_PATH',
      exitCode: ExitCode.USAGE,
    })
  }
}

export class VastProvider implements Provider {
  readonly name = 'vast'
  private readonly createTimeoutMs: number
  constructor(
    readonly cli: VastCli,
    options: {createTimeoutMs?: number} = {},
  ) {
    this.createTimeoutMs = options.createTimeoutMs ?? CREATE_TIMEOUT_MS
  }

  async search(req: SearchRequest): Promise<Offer[]> {
    const args = ['search', 'offers', buildOfferQuery(req.filters)]
    const order = OFFER_ORDERS[req.order ?? 'dph']
    args.push('-o', `${order.field}${order.desc ? '-' : ''}`)
    if (req.limit) args.push('--limit', String(req.limit))
    args.push('--raw')
    const raw = await this.cli.json(args, RawOfferListSchema)
    return raw.map(toOffer)
  }

  async create(req: CreateInstanceRequest): Promise<{id: number}> {
    const args = createInstanceArgs(req)
    const res = await this.cli.json(args, CreateResultSchema, {mutating: true, redact: Object.values(req.env ?? {}), timeoutMs: this.createTimeoutMs})
    if (!res.success || typeof res.new_contract !== 'number') {
      throw new UserError(`vastai create instance: Vast.ai did not create the instance (${res.msg ?? res.error ?? 'success=false'}).`, {
        code: 'VAST_API_ERROR',
        hint: 'The offer may be gone; pick another with `ups offers`.',
        exitCode: ExitCode.EXTERNAL,
      })
    }
    return {id: res.new_contract}
  }

  async show(id: number): Promise<Instance> {
    const args = ['show', 'instance', checkId(id), '--raw']
    const {stdout} = await this.cli.exec(args)
    const data = parseJson(stdout, RawInstanceSchema.or(GoneInstanceSchema), 'vastai show instance')
    if (!('id' in data) || typeof data.id !== 'number') {
      throw new UserError(`Instance ${id} does not exist (destroyed or never created).`, {
        code: 'VAST_NOT_FOUND',
        hint: 'List your instances with `ups instances list`.',
        exitCode: ExitCode.USAGE,
        details: {id},
      })
    }
    return toInstance(data as never)
  }

  async list(): Promise<Instance[]> {
    const raw = await this.cli.json(['show', 'instances', '--raw'], RawInstanceListSchema)
    return raw.map(toInstance)
  }

  async stop(id: number): Promise<void> {
    await this.plainAction(['stop', 'instance', checkId(id)], /^stopping instance \d+\.?$/m)
  }

  async start(id: number): Promise<void> {
    await this.plainAction(['start', 'instance', checkId(id)], /^starting instance \d+\.?$/m)
  }

  async destroy(id: number): Promise<void> {
    // -y: ups asks the user itself; without it the CLI would wait on stdin.
    await this.plainAction(['destroy', 'instance', checkId(id), '-y'], /^destroying instance \d+\.?$/m, true)
  }

  async logs(id: number, options: {tail?: number} = {}): Promise<string[]> {
    const args = ['logs', checkId(id)]
    if (options.tail !== undefined) args.push('--tail', String(options.tail))
    args.push('--raw')
    const {stdout} = await this.cli.exec(args)
    const lines = stdout.split('\n')
    while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop()
    // An instance's log may print its environment or a key: every reader gets it redacted.
    return lines.map((l) => this.cli.redact(l))
  }

  async sshUrl(id: number): Promise<string> {
    const args = ['ssh-url', checkId(id), '--raw']
    const {stdout} = await this.cli.exec(args)
    const url = stdout.trim()
    if (!/^ssh:\/\/[^@\s]+@[^:\s]+:\d+$/.test(url)) throw malformed('vastai ssh-url', 'not an ssh:// URL', url, {})
    return url
  }

  async copyFrom(id: number, remotePath: string, localDir: string): Promise<void> {
    checkCopyPaths(remotePath, localDir)
    await this.rsyncCopy(['copy', `${checkId(id)}:${remotePath}`, localDir], id, remotePath, `${id}:${remotePath}`)
  }

  async copyTo(id: number, localPath: string, remotePath: string): Promise<void> {
    checkCopyPaths(remotePath, localPath)
    await this.rsyncCopy(['copy', localPath, `${checkId(id)}:${remotePath}`], id, remotePath, `${localPath} to ${id}:${remotePath}`)
  }

  /** The CLI exits 0 whatever rsync did: read what it printed. */
  private async rsyncCopy(args: string[], id: number, remotePath: string, what: string): Promise<void> {
    const {stdout, stderr} = await this.cli.exec(args, {mutating: true, timeoutMs: 30 * 60_000})
    const text = `${stdout}\n${stderr}`
    const failure = /^rsync(?: error)?:.*$/m.exec(text) ?? (/^copying /m.test(stdout) ? null : /\S.*$/m.exec(stdout.trim()))
    if (failure) {
      throw new UserError(`vastai copy ${what} did not copy: ${failure[0].slice(0, 200)}`, {
        code: 'VAST_COPY_FAILED',
        hint: `The instance may not be running, or the path may not exist there; check with \`ups instances show ${id}\`.`,
        exitCode: ExitCode.EXTERNAL,
        details: {id, remotePath},
      })
    }
  }

  /** stop/start/destroy print plain text even with --raw; success is the expected sentence. */
  private async plainAction(args: string[], expected: RegExp, emptyOk = false): Promise<void> {
    const {stdout} = await this.cli.exec(args, {mutating: true})
    const text = stdout.trim()
    if (expected.test(text) || (emptyOk && text === '')) return
    throw new UserError(`vastai ${args.slice(0, 2).join(' ')} ${args[2]} did not confirm: ${text.slice(0, 200) || '(no output)'}`, {
      code: 'VAST_API_ERROR',
      hint: `Check the instance with \`ups instances show ${args[2]}\`.`,
      exitCode: ExitCode.EXTERNAL,
    })
  }
}
