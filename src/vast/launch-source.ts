/**
 * Where a launched instance fetches the project from: `--source git:URL#REF`, or by default
 * this checkout's origin URL at its HEAD commit, refusing uncommitted changes (the instance
 * would run code that exists nowhere else).
 */
import {ExitCode, UserError} from '../util/errors.js'
import {redactSecrets, urlHasCredentials} from '../util/secrets.js'

/** Runs git in a folder; injectable so tests need no repository. */
export type GitRunner = (args: string[], cwd: string) => Promise<{stdout: string; stderr: string; exitCode: number}>

export interface LaunchSource {
  gitUrl: string
  ref: string
  /** The local tree had uncommitted changes (only with --allow-dirty). */
  dirty: boolean
  /** Where it came from: "--source" or "this checkout". */
  from: 'flag' | 'checkout'
  /** The checkout's top folder, when known (config paths are made relative to it). */
  repoRoot: string | null
}

export function parseSourceSpec(spec: string): {gitUrl: string; ref: string} {
  const m = /^git:(.+)#([^#]+)$/.exec(spec.trim())
  if (m && urlHasCredentials(m[1])) {
    // Never echo the URL: the token is in it.
    throw new UserError('--source carries credentials in its URL (user:password@ or TOKEN@), which would end up in the onstart script.', {
      code: 'LAUNCH_BAD_SOURCE',
      hint: 'Use a public URL or a deploy key; secrets reach the instance through its environment.',
      exitCode: ExitCode.USAGE,
    })
  }
  if (!m) {
    throw new UserError(`--source "${redactSecrets(spec, {})}" is not git:URL#REF.`, {
      code: 'LAUNCH_BAD_SOURCE',
      hint: 'Example: --source git:https://github.com/org/ups.git#3f2c1ab (a commit, tag or branch after the #).',
      exitCode: ExitCode.USAGE,
    })
  }
  return {gitUrl: m[1], ref: m[2]}
}

async function git(run: GitRunner, args: string[], cwd: string, what: string): Promise<string> {
  let res: Awaited<ReturnType<GitRunner>>
  try {
    res = await run(args, cwd)
  } catch (error) {
    throw new UserError(`Could not run git to find ${what} (${(error as Error).message}).`, {
      code: 'LAUNCH_GIT_FAILED',
      hint: 'Install git, or pass --source git:URL#REF.',
      exitCode: ExitCode.EXTERNAL,
    })
  }
  if (res.exitCode !== 0) {
    throw new UserError(`git ${args.join(' ')} failed: ${res.stderr.trim().split('\n').pop() || `exit code ${res.exitCode}`}.`, {
      code: 'LAUNCH_GIT_FAILED',
      hint: `ups launch needs ${what}: run it inside a clone with an origin remote, or pass --source git:URL#REF.`,
      exitCode: ExitCode.USAGE,
    })
  }
  return res.stdout.trim()
}

/**
 * Removes credentials from the origin URL (user:password@ or an https TOKEN@): they must not reach
 * the onstart script. A bare user of another scheme (ssh://git@host) is kept: it is no secret.
 */
export function withoutCredentials(url: string): string {
  return urlHasCredentials(url) ? url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1') : url
}

export async function resolveLaunchSource(
  options: {source?: string; allowDirty: boolean},
  deps: {git: GitRunner; cwd: string},
): Promise<LaunchSource> {
  const root = await deps.git(['rev-parse', '--show-toplevel'], deps.cwd).then(
    (r) => (r.exitCode === 0 ? r.stdout.trim() : null),
    () => null,
  )
  if (options.source) return {...parseSourceSpec(options.source), dirty: false, from: 'flag', repoRoot: root}
  const gitUrl = withoutCredentials(await git(deps.git, ['remote', 'get-url', 'origin'], deps.cwd, "the repository's origin URL"))
  const ref = await git(deps.git, ['rev-parse', 'HEAD'], deps.cwd, 'the HEAD commit')
  const status = await git(deps.git, ['status', '--porcelain'], deps.cwd, 'whether the tree is clean')
  const dirty = status.length > 0
  if (dirty && !options.allowDirty) {
    const files = status.split('\n').slice(0, 5).map((l) => l.trim()).join(', ')
    throw new UserError(`The working tree has uncommitted changes (${files}${status.split('\n').length > 5 ? ', ...' : ''}); the instance would fetch commit ${ref.slice(0, 12)} without them.`, {
      code: 'LAUNCH_DIRTY_TREE',
      hint: 'Commit and push them, or pass --allow-dirty to launch the pushed commit anyway.',
      exitCode: ExitCode.USAGE,
    })
  }
  return {gitUrl, ref, dirty, from: 'checkout', repoRoot: root}
}
