/**
 * The one config loader every command uses. Throws a UserError naming the file and line when
 * the config cannot be read (exit 2) or does not match the schema (exit 1).
 */
import {ExitCode, UserError} from '../util/errors.js'
import {displayPath, type LoadOptions, loadRawConfig, type SourceMap} from './load.js'
import {formatIssue, formatUnknownKey, parseConfig, type UnknownKey} from './parse.js'
import type {UpsConfig} from './schema.js'

export * from './schema.js'
export {deepMerge, displayPath, formatLocation, getPath, loadRawConfig, type LoadDeps, type LoadOptions, type SourceLocation, type SourceMap} from './load.js'
export {formatIssue, formatUnknownKey, parseConfig, type ConfigIssue, type UnknownKey} from './parse.js'
export * from './resolve.js'
export {TASKS, TASK_NAMES, type TaskInfo} from './tasks.js'

export interface LoadedConfig {
  config: UpsConfig
  /** The merged YAML before schema parsing (what `ups config show` prints). */
  raw: Record<string, unknown>
  sources: SourceMap
  files: string[]
  /** Unknown keys, as "file:line: unknown key a.b (did you mean a.c?)". */
  warnings: string[]
  unknownKeys: UnknownKey[]
}

export async function loadConfig(path: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  const {raw, sources, files} = await loadRawConfig(path, options)
  const parsed = parseConfig(raw, sources)
  if (!parsed.config) {
    const cwd = options.deps?.cwd ?? process.cwd()
    const lines = parsed.issues.slice(0, 8).map((i) => `  ${formatIssue(i)}`)
    if (parsed.issues.length > 8) lines.push(`  ... and ${parsed.issues.length - 8} more`)
    throw new UserError(`Config ${displayPath(files[0] ?? path, cwd)} is invalid:\n${lines.join('\n')}`, {
      code: 'CONFIG_INVALID',
      hint: `Fix the keys above; \`ups validate ${path}\` runs every check.`,
      exitCode: ExitCode.CHECK_FAILED,
      details: {issues: parsed.issues},
    })
  }
  return {config: parsed.config, raw, sources, files, warnings: parsed.unknownKeys.map(formatUnknownKey), unknownKeys: parsed.unknownKeys}
}
