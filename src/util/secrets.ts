/**
 * The secrets ups handles. Their values must never reach logs, run directories, generated
 * scripts or error messages; everything that writes text a user or file keeps passes through here.
 *
 * Redaction works three ways, so that text from elsewhere (an instance's log, whose environment
 * is not ours) is cleaned too:
 *  1. values: the current values of VAST_API_KEY, WANDB_API_KEY and of any variable in the given
 *     environment whose name looks secret (HF_TOKEN, AWS_SECRET_ACCESS_KEY...), wherever they occur;
 *  2. assignments, whatever the value: `WANDB_API_KEY=...`, `api_key: ...`, `"HF_TOKEN": "..."`,
 *     `export DB_PASSWORD=...`, `--api-key ...`, `wandb login ...`, `Authorization: ...`;
 *  3. shapes that are keys by themselves: GitHub (ghp_, gho_, ghs_, ghu_, ghr_, github_pat_),
 *     AWS access key ids (AKIA/ASIA), Hugging Face (hf_), W&B (wandb_v1_..., local-<40 hex>),
 *     bearer tokens, and credentials in URLs (https://user:pass@, https://TOKEN@).
 * Bare 40- or 64-character hex strings are NOT redacted on their own: sha256 checkpoint hashes and
 * git commits look the same as legacy W&B (40 hex) and Vast (64 hex) keys. Such a key is caught by
 * its value (1) or by the name before it (2).
 */
export const SECRET_ENV_VARS = ['VAST_API_KEY', 'WANDB_API_KEY'] as const

export const REDACTED = '[REDACTED]'

const MIN_SECRET_LENGTH = 6
/** Other secret-named variables: shorter values would be redacted out of ordinary text. */
const MIN_OTHER_SECRET_LENGTH = 8

/** The last word of a secret's name (`WANDB_API_KEY` -> KEY, `apiKey` -> KEY). */
const SECRET_WORD = /^(?:API|ACCESS|PRIVATE|CLIENT|AUTH|REFRESH|SESSION|BEARER|SECRET)?(?:KEY|TOKEN|SECRET|SECRETS|PASSWORD|PASSWD|PASS|PASSPHRASE|CREDENTIAL|CREDENTIALS)$/

/**
 * Whether a variable, key or flag name names a secret: its last word is KEY, TOKEN, SECRET,
 * PASSWORD, PASS or CREDENTIAL(S). Words are split at `_`, `-`, `.` and camelCase, so
 * `KeyError`, `tokens`, `passed` and `num_tokens` are not secret names; a bare `key` or `pass`
 * (common in ordinary output) is not one either.
 */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toUpperCase())
  const last = words.at(-1)
  if (!last || !SECRET_WORD.test(last)) return false
  return words.length > 1 || (last !== 'KEY' && last !== 'PASS')
}

/** Secret-looking names of other variables, per environment object, refreshed once a second. */
const namesCache = new WeakMap<object, {names: string[]; at: number}>()

function otherSecretNames(env: NodeJS.ProcessEnv): string[] {
  // Listing process.env costs ~100 us, and every log line is redacted: list it at most once a second.
  const now = Date.now()
  const hit = namesCache.get(env)
  if (hit && now - hit.at < 1000) return hit.names
  const names = Object.keys(env).filter((n) => !(SECRET_ENV_VARS as readonly string[]).includes(n) && isSecretName(n))
  namesCache.set(env, {names, at: now})
  return names
}

/** The (name, value) pairs of `env` whose values are secrets, longest value first. */
export function secretEnvValues(env: NodeJS.ProcessEnv = process.env): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  for (const name of SECRET_ENV_VARS) {
    const value = env[name]
    if (value && value.length >= MIN_SECRET_LENGTH) pairs.push([name, value])
  }
  for (const name of otherSecretNames(env)) {
    const value = env[name]
    if (value && value.length >= MIN_OTHER_SECRET_LENGTH && !/^[/~.]/.test(value)) pairs.push([name, value])
  }
  return pairs.sort((a, b) => b[1].length - a[1].length)
}

/** Values after a secret name that are not secrets: placeholders, references, flags, small numbers. */
const NOT_A_SECRET = /^(?:\[REDACTED[^\]]*\]?|\*+|\.{3}|…|<[^>]*>|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|true|false|null|none|nil|yes|no|unset|\d{1,6})$/i

const keep = (value: string): boolean => {
  const inner = /^(["'])(.*)\1$/s.exec(value)?.[2] ?? value
  return inner === '' || NOT_A_SECRET.test(inner)
}
const masked = (value: string): string => (/^["']/.test(value) ? `${value[0]}${REDACTED}${value[0]}` : REDACTED)

/** NAME=value, NAME: value, "NAME": "value", NAME := value (NAME possibly quoted). */
const ASSIGNMENT = /(?<![\w.-])(["']?)([A-Za-z_][\w.-]*)\1([ \t]*(?::=|=>|:(?!-)|=)[ \t]*)("(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'|\$\{[^}\s]*\}|[^\s"',;&|)}\]]+)/g
/** --api-key VALUE, --token=VALUE. */
const FLAG = /(?<![\w-])(--?[A-Za-z][\w-]*)([ \t]+|=)("[^"\r\n]*"|'[^'\r\n]*'|[^\s"'-][^\s"']*)/g
/** Authorization headers, whatever the scheme. */
const AUTHORIZATION = /\b((?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?)(?:(basic|bearer|token|digest)[ \t]+)?([^\s"',;]+)/gi
/** A bearer token on its own (it holds a digit: not the English word). */
const BEARER = /\b(bearer[ \t]+)(?=[\w.~+/=-]*\d)([\w.~+/=-]{8,})/gi
const COMMAND_KEYS: Array<[RegExp, string]> = [
  [/\b(wandb[ \t]+login(?:[ \t]+--[\w-]+(?:=\S+)?)*[ \t]+)([\w-]{20,})/g, '$1' + REDACTED],
  [/\b(set[ \t]+api-key[ \t]+)(\S+)/g, '$1' + REDACTED],
]
/** Keys recognisable by their shape alone. */
const KEY_SHAPES: RegExp[] = [
  /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g,
  /\bgithub_pat_\w{30,}/g,
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g,
  /\bhf_[A-Za-z0-9]{30,}\b/g,
  /\bwandb_v1_\w{20,}/g,
  /\blocal-[0-9a-f]{40}\b/g,
]
/** scheme://userinfo@ */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]+)@/gi

/**
 * Whether a URL carries credentials: any user info in an http(s) URL (`https://TOKEN@host` is a
 * token), a password in any other (`ssh://git@host` is only a user name).
 */
export function urlHasCredentials(url: string): boolean {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)@/i.exec(url.trim())
  if (!m) return false
  return /^(?:git\+)?https?$/i.test(m[1]) || m[2].includes(':')
}

function redactAssignments(text: string): string {
  return text.replace(ASSIGNMENT, (all, q: string, name: string, sep: string, value: string) => {
    if (isSecretName(name)) return keep(value) ? all : `${q}${name}${q}${sep}${masked(value)}`
    // `"reason": "... WANDB_API_KEY=..."`: the value may hold an assignment of its own.
    return `${q}${name}${q}${sep}${redactAssignments(value)}`
  })
}

/** Every pattern below needs one of these; most log lines have none and skip the rest. */
const TRIGGER = /key|token|secret|pass|credential|auth|bearer|:\/\/|gh[pousr]_|github_pat_|AKIA|ASIA|hf_|wandb_v1_|local-|login/i

/** Redacts by the patterns (2, 3) only: no environment needed. */
export function redactSecretPatterns(text: string): string {
  if (!TRIGGER.test(text)) return text
  let out = text
  out = out.replace(URL_USERINFO, (all, scheme: string, info: string) => (urlHasCredentials(`${scheme}${info}@x`) ? `${scheme}${REDACTED}@` : all))
  out = out.replace(AUTHORIZATION, (all, head: string, scheme: string | undefined, value: string) => (keep(value) ? all : `${head}${scheme ? `${scheme} ` : ''}${REDACTED}`))
  out = out.replace(BEARER, `$1${REDACTED}`)
  for (const [re, to] of COMMAND_KEYS) out = out.replace(re, to)
  out = out.replace(FLAG, (all, flag: string, sep: string, value: string) => (isSecretName(flag) && !keep(value) ? `${flag}${sep}${masked(value)}` : all))
  out = redactAssignments(out)
  for (const re of KEY_SHAPES) out = out.replace(re, REDACTED)
  return out
}

/**
 * Replaces every occurrence of a secret's value in `env` with `[REDACTED:<name>]`, then every
 * secret found by name or shape with `[REDACTED]` (see the top of this file).
 */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text
  for (const [name, value] of secretEnvValues(env)) {
    if (out.includes(value)) out = out.split(value).join(`[REDACTED:${name}]`)
  }
  return redactSecretPatterns(out)
}

/** A JSON-able value with every string in it redacted (through its JSON text). */
export function redactJson<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  return JSON.parse(redactSecrets(JSON.stringify(value), env)) as T
}

/** Lines of a log, each redacted. */
export function redactLines(lines: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  return lines.map((l) => redactSecrets(l, env))
}

/** What kind of secret a value holds (for refusals that must not echo it), else undefined. */
export function findSecret(text: string, env: NodeJS.ProcessEnv = {}): string | undefined {
  for (const [name, value] of secretEnvValues(env)) if (text.includes(value)) return `the value of ${name}`
  if (redactSecretPatterns(text) !== text) return 'a key, token or credential'
  return undefined
}

/**
 * A config with the values of secret-named environment variables put back as `${env:NAME}`:
 * what config.resolved.yaml and `ups config show` hold instead of the key. Interpolating it again
 * (`ups resume` reloads the resolved config) gives the same value from the same environment.
 * Strings only; the object passed in is not changed.
 */
export function redactConfigSecrets<T>(config: T, env: NodeJS.ProcessEnv = process.env): T {
  const pairs = secretEnvValues(env)
  if (pairs.length === 0) return config
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      let s = node
      for (const [name, value] of pairs) if (s.includes(value)) s = s.split(value).join(`\${env:${name}}`)
      return s
    }
    if (Array.isArray(node)) return node.map(walk)
    const proto = node && typeof node === 'object' ? Object.getPrototypeOf(node) : undefined
    if (proto === Object.prototype || proto === null) {
      return Object.fromEntries(Object.entries(node as object).map(([k, v]) => [k, walk(v)]))
    }
    return node
  }
  return walk(config) as T
}

/** yes/no for `ups doctor`: whether a secret is set, never its value. */
export function secretPresence(env: NodeJS.ProcessEnv = process.env): Record<string, boolean> {
  return Object.fromEntries(SECRET_ENV_VARS.map((name) => [name, Boolean(env[name])]))
}
