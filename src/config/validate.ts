/**
 * `ups validate`: load the config (a parse error is exit 2), match it to the schema, then run
 * every named check. Returns the whole report; the command renders it and sets the exit code.
 */
import {constants} from 'node:fs'
import {access, readdir, readFile, stat} from 'node:fs/promises'
import {totalmem} from 'node:os'
import {dirname} from 'node:path'

import {CHECKS, type CheckContext, type CheckStatus} from './checks.js'
import {displayPath, type LoadDeps, loadRawConfig} from './load.js'
import {formatIssue, formatUnknownKey, parseConfig} from './parse.js'

export interface CheckReport {
  id: string
  group: string
  title: string
  status: CheckStatus
  message: string
}

export interface ValidateResult {
  config: string
  files: string[]
  valid: boolean
  strict: boolean
  checks: CheckReport[]
  summary: {passed: number; warnings: number; failed: number; skipped: number; total: number}
}

export interface ValidateOptions {
  overrides?: string[]
  strict?: boolean
  noData?: boolean
  deps?: Partial<LoadDeps> & {fs?: CheckContext['fs']; memoryBytes?: number}
}

export const nodeCheckFs: CheckContext['fs'] = {
  async exists(path) {
    return stat(path).then(() => true, () => false)
  },
  async canWriteDir(path) {
    // Never create anything while validating: test the folder, or the nearest one that exists.
    let dir = path
    for (;;) {
      const info = await stat(dir).catch(() => undefined)
      if (info) return info.isDirectory() && (await access(dir, constants.W_OK).then(() => true, () => false))
      const parent = dirname(dir)
      if (parent === dir) return false
      dir = parent
    }
  },
  async readJson(path) {
    try {
      return JSON.parse(await readFile(path, 'utf8'))
    } catch {
      return undefined
    }
  },
  async listDir(path) {
    return readdir(path).catch(() => [])
  },
}

export async function validateConfig(path: string, options: ValidateOptions = {}): Promise<ValidateResult> {
  const env = options.deps?.env ?? process.env
  const cwd = options.deps?.cwd ?? process.cwd()
  const {raw, sources, files} = await loadRawConfig(path, {overrides: options.overrides, deps: options.deps})
  const parsed = parseConfig(raw, sources)
  const checks: CheckReport[] = [
    parsed.config
      ? {id: 'schema.valid', group: 'Schema', title: 'config matches the schema', status: 'pass', message: `${files.length} file(s) merged`}
      : {id: 'schema.valid', group: 'Schema', title: 'config matches the schema', status: 'fail', message: parsed.issues.map(formatIssue).join('\n')},
    parsed.unknownKeys.length === 0
      ? {id: 'schema.known_keys', group: 'Schema', title: 'no unknown keys', status: 'pass', message: 'every key is known'}
      : {id: 'schema.known_keys', group: 'Schema', title: 'no unknown keys', status: 'warn', message: parsed.unknownKeys.map(formatUnknownKey).join('\n')},
  ]
  const ctx: CheckContext | undefined = parsed.config && {config: parsed.config, env, cwd, noData: options.noData ?? false, fs: options.deps?.fs ?? nodeCheckFs, memoryBytes: options.deps?.memoryBytes ?? totalmem()}
  for (const check of CHECKS) {
    const outcome = ctx ? await check.run(ctx) : {status: 'skip' as const, message: 'not run: the config does not match the schema'}
    checks.push({id: check.id, group: check.group, title: check.title, ...outcome})
  }
  const count = (s: CheckStatus) => checks.filter((c) => c.status === s).length
  const summary = {passed: count('pass'), warnings: count('warn'), failed: count('fail'), skipped: count('skip'), total: checks.length - count('skip')}
  const strict = options.strict ?? false
  return {
    config: displayPath(files[0], cwd),
    files: files.map((f) => displayPath(f, cwd)),
    valid: summary.failed === 0 && (!strict || summary.warnings === 0),
    strict,
    checks,
    summary,
  }
}

const ICONS: Record<CheckStatus, string> = {pass: '✅', warn: '⚠️ ', fail: '❌', skip: '⏭️ '}

export function renderValidation(result: ValidateResult): string {
  const lines = [`Validating ${result.config}${result.files.length > 1 ? ` (includes ${result.files.slice(1).join(', ')})` : ''}`]
  let group = ''
  const schemaFailed = result.checks.some((c) => c.id === 'schema.valid' && c.status === 'fail')
  for (const check of result.checks) {
    if (schemaFailed && check.group !== 'Schema') continue
    if (check.group !== group) {
      group = check.group
      lines.push('', group)
    }
    const [first, ...rest] = check.message.split('\n')
    lines.push(`  ${ICONS[check.status]} ${check.title} [${check.id}]: ${first}`)
    for (const more of rest) lines.push(`       ${more}`)
  }
  const s = result.summary
  if (schemaFailed) lines.push('', `(${s.skipped} checks not run: fix the schema errors first)`)
  lines.push('', `Results: ${s.passed}/${s.total} checks passed (${s.warnings} warning${s.warnings === 1 ? '' : 's'}, ${s.failed} failed, ${s.skipped} skipped)`)
  if (result.valid) lines.push('✅ Config is valid and ready for training!')
  else if (s.failed > 0) lines.push(`❌ Config is invalid: fix the ${s.failed} failed check${s.failed === 1 ? '' : 's'} above.`)
  else lines.push(`❌ Config has ${s.warnings} warning${s.warnings === 1 ? '' : 's'} and --strict treats them as failures.`)
  return lines.join('\n')
}
