/**
 * The onstart script a launched instance runs: install Node if missing, fetch the project at a
 * pinned commit, npm ci, get the data, `ups doctor`, `ups run`, and on exit (trap) run the
 * finishing commands and, with auto-shutdown, STOP the instance (never destroy: the disk is kept
 * for audit). Pure: a plan in, text out. Secrets never enter the text; they reach the instance
 * through the create call's environment.
 *
 * Assumptions about the Vast.ai container (from Vast's documentation of self-stop):
 * CONTAINER_ID holds the instance id (VAST_CONTAINERLABEL="C.<id>" as a fallback) and
 * CONTAINER_API_KEY an instance-scoped key; the vastai CLI is preinstalled or pip-installable.
 * The script's stdout/stderr are what `vastai logs` shows.
 */
import {gzipSync} from 'node:zlib'

import {ExitCode, UserError} from '../util/errors.js'
import {findSecret, urlHasCredentials} from '../util/secrets.js'

/** Vast rejects longer onstart scripts. */
export const ONSTART_LIMIT = 4048
/** Where the script puts the project on the instance unless the plan says otherwise. */
export const ONSTART_WORKDIR = '/workspace/ups'
/** Written into the run directory by `ups recover` after the restored checkpoints (last). */
export const RESTORE_MARKER = '.restore-complete'
/** How long a resuming instance waits for restored checkpoints by default (30 min). */
export const RESTORE_WAIT_S = 1800

export interface OnstartPlan {
  /** Where the instance fetches the project: a git URL (no credentials) and a commit or ref. */
  source: {gitUrl: string; ref: string}
  /** Config path inside the repository. */
  trainConfig: string
  /** Extra `ups run` arguments, passed verbatim (each one shell-quoted). */
  runArgs?: string[]
  /** Data specs: `generate:ARGS`, `url:URL`, `rclone:REMOTE:PATH`. */
  data?: string[]
  autoShutdown: boolean
  runId?: string
  /**
   * Resume this run instead of starting one: the script runs `ups resume RUN_ID <runArgs>`
   * (after an instance was recreated; checkpoints come from W&B or were restored).
   */
  resumeRunId?: string
  /**
   * With resumeRunId: before `ups resume`, wait (bounded; polling every 10 s) for
   * `<workdir>/artifacts/runs/<run>/.restore-complete`, which `ups recover` copies last, after the
   * checkpoints. Without it by the deadline the script logs that and resumes anyway.
   * UPS_RESTORE_TIMEOUT_S / UPS_RESTORE_POLL_S in the instance environment override the timing.
   */
  restoreWait?: boolean | {timeoutS: number}
  /** Project folder on the instance (default /workspace/ups). */
  workdir?: string
  /** The run's own log file (default /workspace/ups-run.log). */
  logFile?: string
  nodeMajor?: number
  /** ups commands run on exit before the shutdown, e.g. [['wandb', 'sync', 'artifacts/runs/x']]. */
  onExit?: string[][]
  /** Values that must not appear in the script (checked; e.g. the API keys). */
  secretValues?: string[]
}

export interface OnstartScript {
  script: string
  /** True when the plain script was over the limit and was packed with gzip+base64. */
  compressed: boolean
  length: number
  /** The plain script (what runs), for --dry-run display. */
  plain: string
}

/** POSIX single-quoting. */
export function shQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

const bad = (message: string, hint?: string) => new UserError(message, {code: 'VAST_ONSTART_INVALID', hint, exitCode: ExitCode.USAGE})

/** The `ups ...` arguments one data spec becomes. */
export function dataStepArgs(spec: string): string[] {
  const m = /^(generate|url|rclone):(.+)$/s.exec(spec.trim())
  if (!m) throw bad(`Data spec "${spec}" is not generate:..., url:... or rclone:....`, 'Examples: generate:burgers, url:https://host/data.h5, rclone:remote:bucket/path')
  const [, kind, rest] = m
  if (kind === 'generate') return ['data', 'generate', ...rest.trim().split(/\s+/)]
  if (kind === 'url') return ['data', 'fetch', rest.trim()]
  return ['data', 'fetch', `rclone:${rest.trim()}`]
}

const SECRETISH = /\b[A-Z0-9_]*(KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*=/
/** Newline, carriage return, NUL, ESC, DEL...: a newline ends a comment or a quoted line's context. */
const CONTROL = /[\u0000-\u001f\u007f]/

/** Refuses a value with a control character: the script holds every value on one line. */
export function checkScriptValue(name: string, value: string): void {
  if (CONTROL.test(value)) throw bad(`The ${name} contains a control character (newline, carriage return, tab, NUL...); it must not go into the onstart script.`, 'Use a value on one line without control characters.')
}

/** Every value the script will hold, with the name a refusal gives it. */
function fields(plan: OnstartPlan): Array<[string, string]> {
  const list: Array<[string, string | undefined]> = [
    ['git URL (--source)', plan.source.gitUrl],
    ['git ref (--source)', plan.source.ref],
    ['training config path', plan.trainConfig],
    ['run id', plan.runId],
    ['resumed run id', plan.resumeRunId],
    ['workdir', plan.workdir],
    ['log file', plan.logFile],
    ...(plan.runArgs ?? []).map((a, i): [string, string] => [`run argument ${i + 1} (--run-arg)`, a]),
    ...(plan.data ?? []).map((a, i): [string, string] => [`data spec ${i + 1} (--data)`, a]),
    ...(plan.onExit ?? []).flatMap((w, i) => w.map((a, j): [string, string] => [`on-exit step ${i + 1} word ${j + 1}`, a])),
  ]
  return list.filter((f): f is [string, string] => typeof f[1] === 'string')
}

function validate(plan: OnstartPlan): void {
  const {gitUrl, ref} = plan.source
  if (!gitUrl) throw bad('The onstart plan has no git URL to fetch the project from.', 'Pass --source git:URL#REF.')
  // Values are single-quoted where they are used; a control character could still end the header
  // comment (or make a log line lie), so none may hold one.
  for (const [name, value] of fields(plan)) checkScriptValue(name, value)
  if (urlHasCredentials(gitUrl)) {
    throw bad(`The git URL carries credentials, which would end up in the onstart script.`, 'Use a public URL or a deploy key; secrets go through the instance environment.')
  }
  if (gitUrl.startsWith('-') || /^ext::/i.test(gitUrl)) throw bad('The git URL is not a URL git can fetch from (it starts with "-" or "ext::").', 'Example: --source git:https://github.com/org/ups.git#3f2c1ab')
  if (!/^[\w./-]+$/.test(ref) || ref.startsWith('-')) throw bad(`Git ref "${ref}" is not a plain commit, tag or branch name.`)
  if (!plan.trainConfig) throw bad('The onstart plan has no training config.')
  if (plan.trainConfig.startsWith('-')) throw bad(`Training config path "${plan.trainConfig}" starts with "-".`)
  for (const [name, id] of [['Run id', plan.runId], ['Run id', plan.resumeRunId]] as const) {
    if (id !== undefined && (!/^[\w.-]+$/.test(id) || /^\.*$/.test(id))) throw bad(`${name} "${id}" is not a plain run id.`)
  }
  if (plan.restoreWait && !plan.resumeRunId) throw bad('The onstart plan waits for restored checkpoints but resumes no run.')
  const t = typeof plan.restoreWait === 'object' ? plan.restoreWait.timeoutS : 0
  if (!Number.isInteger(t) || t < 0) throw bad(`Restore wait ${t} s is not a whole number of seconds.`)
  if (plan.nodeMajor !== undefined && (!Number.isInteger(plan.nodeMajor) || plan.nodeMajor < 1 || plan.nodeMajor > 999)) throw bad(`Node major version ${plan.nodeMajor} is not a whole number.`)
  for (const a of [...(plan.runArgs ?? []), ...(plan.data ?? [])]) {
    if (SECRETISH.test(a)) throw bad(`Argument "${a.split('=')[0]}=..." looks like a secret; it must not go into the onstart script.`, 'Secrets reach the instance through its environment (the create call).')
  }
  // The run arguments together too: `--api-key VALUE` is two words.
  for (const [name, value] of [...fields(plan), ['run arguments (--run-arg)', (plan.runArgs ?? []).join(' ')]]) {
    const what = findSecret(value)
    if (what) throw bad(`The ${name} holds ${what}; it must not go into the onstart script.`, 'Secrets reach the instance through its environment (the create call), never the script.')
  }
}

function cmdLine(words: string[]): string {
  return words.map(shQuote).join(' ')
}

/** Waits for the restore marker before the resume; never forever. */
function restoreWaitLines(plan: OnstartPlan): string[] {
  if (!plan.restoreWait || !plan.resumeRunId) return []
  const timeoutS = typeof plan.restoreWait === 'object' ? plan.restoreWait.timeoutS : RESTORE_WAIT_S
  return [
    `M="$APP/artifacts/runs/${plan.resumeRunId}/${RESTORE_MARKER}"`,
    `T="\${UPS_RESTORE_TIMEOUT_S:-${timeoutS}}"; P="\${UPS_RESTORE_POLL_S:-10}"; w=0`,
    'log "waiting up to $T s for restored checkpoints ($M)"',
    'until [ -f "$M" ] || [ "$w" -ge "$T" ]; do sleep "$P"; w=$((w + (P > 0 ? P : 1))); done',
    'if [ -f "$M" ]; then log "checkpoints restored after $w s"; else log "no restored checkpoints after $w s; resuming without them"; fi',
  ]
}

/** The readable script. */
export function renderOnstart(plan: OnstartPlan): string {
  validate(plan)
  const app = plan.workdir ?? ONSTART_WORKDIR
  const runLog = plan.logFile ?? '/workspace/ups-run.log'
  const nodeMajor = plan.nodeMajor ?? 20
  const onExit = (plan.onExit ?? []).map((w) => `  ups ${cmdLine(w)} || log ${shQuote(`on-exit step failed: ${w[0]}`)}`)
  const data = (plan.data ?? []).map((spec) => `ups ${cmdLine(dataStepArgs(spec))} || exit 14`)
  const run = plan.resumeRunId
    ? ['resume', plan.resumeRunId, ...(plan.runArgs ?? [])]
    : ['run', '--train-config', plan.trainConfig, ...(plan.runArgs ?? [])]
  return [
    '#!/bin/bash',
    '# shellcheck disable=SC2317 # functions run from the EXIT trap',
    // validate() refused control characters: nothing here can end the comment.
    `# ups onstart: ups ${plan.resumeRunId ? `resume ${shQuote(plan.resumeRunId)}` : `run ${shQuote(plan.trainConfig)}`} at ${shQuote(plan.source.ref)}. Generated by ups launch; holds no secrets.`,
    'set -uo pipefail',
    `APP=${shQuote(app)}`,
    `RUN_LOG=${shQuote(runLog)}`,
    `AUTO_SHUTDOWN=${plan.autoShutdown ? 1 : 0}`,
    ...(plan.runId ? [`export UPS_RUN_ID=${shQuote(plan.runId)}`] : []),
    'log() { echo "[ups $(date -u +%Y-%m-%dT%H:%M:%SZ)] $*"; }',
    'ups() { node "$APP/bin/run.js" "$@"; }',
    'stop_self() {',
    '  local label="${VAST_CONTAINERLABEL:-}"',
    '  local id="${CONTAINER_ID:-${label#C.}}"',
    '  if [ -z "$id" ]; then log "auto-shutdown: CONTAINER_ID is not set; cannot stop"; return 1; fi',
    '  command -v vastai >/dev/null 2>&1 || pip install -q vastai >/dev/null 2>&1 || python3 -m pip install -q vastai >/dev/null 2>&1',
    '  if [ -n "${CONTAINER_API_KEY:-}" ]; then export VAST_API_KEY="$CONTAINER_API_KEY"; fi',
    '  for _ in 1 2 3; do',
    '    vastai stop instance "$id" && return 0',
    '    sleep 20',
    '  done',
    '  log "auto-shutdown: vastai stop instance $id failed"',
    '}',
    'on_exit() {',
    '  local code=$?',
    '  trap - EXIT',
    '  log "onstart finished with exit code $code"',
    ...onExit,
    '  if [ "$AUTO_SHUTDOWN" = 1 ]; then',
    '    log "auto-shutdown: stopping this instance (stop, not destroy: the disk is kept)"',
    '    sync',
    '    stop_self',
    '  fi',
    '  exit "$code"',
    '}',
    'trap on_exit EXIT',
    "trap 'exit 143' TERM",
    "trap 'exit 130' INT",
    'log "onstart begins"',
    'if ! command -v git >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then',
    '  apt-get update -qq && apt-get install -y -qq git curl ca-certificates >/dev/null || exit 10',
    'fi',
    'node_major="$(node -v 2>/dev/null | sed -E \'s/^v([0-9]+).*/\\1/\')"',
    `if [ "\${node_major:-0}" -lt ${nodeMajor} ]; then`,
    `  log "installing Node ${nodeMajor}"`,
    `  (curl -fsSL https://deb.nodesource.com/setup_${nodeMajor}.x | bash - >/dev/null && apt-get install -y -qq nodejs >/dev/null) || exit 10`,
    'fi',
    'mkdir -p "$APP" && cd "$APP" || exit 11',
    '[ -d .git ] || git init -q .',
    `git remote remove origin 2>/dev/null; git remote add origin ${shQuote(plan.source.gitUrl)}`,
    `REF=${shQuote(plan.source.ref)}`,
    '{ git fetch -q --depth 1 origin "$REF" && git checkout -q --force FETCH_HEAD; } || { git fetch -q origin && git checkout -q --force "$REF"; } || exit 12',
    'log "project at commit $(git rev-parse HEAD)"',
    'npm ci --no-audit --no-fund || exit 13',
    '[ -f dist/commands/run.js ] || npm run build || exit 13',
    // WebGPU on NVIDIA needs the Vulkan loader and glvnd's libEGL/libGLdispatch (seen on an H200 host).
    '{ ldconfig -p | grep -q libvulkan.so.1 && ldconfig -p | grep -q libEGL.so.1; } || { apt-get update -qq && apt-get install -y -qq --no-install-recommends libvulkan1 libglvnd0 libegl1 >/dev/null; } || log "no Vulkan loader: the webgpu backend is unavailable"',
    'ups doctor || log "ups doctor reported problems; continuing"',
    ...data,
    ...restoreWaitLines(plan),
    `log "starting ups ${run[0]}; its output also goes to $RUN_LOG"`,
    `ups ${cmdLine(run)} 2>&1 | tee -a "$RUN_LOG"`,
    'exit "${PIPESTATUS[0]}"',
    '',
  ].join('\n')
}

function assertNoSecrets(text: string, secrets: string[] = []): void {
  for (const s of secrets) {
    if (s && s.length >= 4 && text.includes(s)) {
      throw new UserError('A secret value would end up in the onstart script; refusing to build it.', {
        code: 'VAST_ONSTART_SECRET',
        hint: 'Pass secrets through the instance environment, not --run-arg, --data or --source.',
        exitCode: ExitCode.USAGE,
      })
    }
  }
}

/** The script to pass as --onstart-cmd: plain when it fits, else a gzip+base64 self-extractor. */
export function buildOnstartScript(plan: OnstartPlan, limit = ONSTART_LIMIT): OnstartScript {
  const plain = renderOnstart(plan)
  assertNoSecrets(plain, plan.secretValues)
  if (plain.length <= limit) return {script: plain, compressed: false, length: plain.length, plain}
  const payload = gzipSync(Buffer.from(plain), {level: 9}).toString('base64')
  const script = [
    '#!/bin/bash',
    '# ups onstart, gzip+base64 packed (the plain script exceeds the onstart size limit)',
    'f="${TMPDIR:-/tmp}/ups-onstart.sh"',
    `echo '${payload}' | base64 -d | gunzip > "$f" && exec bash "$f"`,
    '',
  ].join('\n')
  if (script.length > limit) {
    throw new UserError(`The onstart script is too long even compressed (${script.length} > ${limit} characters).`, {
      code: 'VAST_ONSTART_TOO_LONG',
      hint: 'Shorten the run arguments or data specs (put long settings in the config file).',
      exitCode: ExitCode.USAGE,
    })
  }
  return {script, compressed: true, length: script.length, plain}
}
