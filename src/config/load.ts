/**
 * Reads a config the way every command does: `include` chains (relative, recursive, cycles are
 * errors), deep merge (maps merge; lists and scalars replace), `--set a.b=value` overrides,
 * `${a.b}` / `${env:NAME}` interpolation, and $PDEBENCH_ROOT as the fallback data root.
 * Remembers where every key came from (file:line:column) so errors can point at it.
 */
import {readFile as fsReadFile, stat} from 'node:fs/promises'
import {dirname, extname, relative, resolve} from 'node:path'
import {isMap, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument, visit, type Document, type Node} from 'yaml'

import {ExitCode, UserError, fsError} from '../util/errors.js'

export interface SourceLocation {
  file: string
  line: number
  column: number
}

/** Dotted key path -> where it was set. Later layers overwrite earlier ones. */
export type SourceMap = Map<string, SourceLocation>

export interface LoadDeps {
  readFile(path: string): Promise<string>
  env: NodeJS.ProcessEnv
  cwd: string
}

export interface LoadOptions {
  /** `a.b.c=value` strings; the value is parsed as YAML. */
  overrides?: string[]
  deps?: Partial<LoadDeps>
}

export interface RawConfig {
  raw: Record<string, unknown>
  sources: SourceMap
  /** Every file read, the entry config first, then includes in load order. */
  files: string[]
}

type Obj = Record<string, unknown>

export const isPlainObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Configs are a few KB; anything past this is a wrong file (a dataset, a log), refused before it is read. */
export const MAX_CONFIG_BYTES = 1024 * 1024

/** Keys that would reach Object.prototype through a plain object: refused in YAML and --set. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

/** Most alias expansions one config may make; a config needs a handful, an alias bomb millions. */
const MAX_ALIAS_COUNT = 1000

const tooLarge = (shown: string, bytes: number) =>
  new UserError(`${shown}: the config file is ${(bytes / 1024 / 1024).toFixed(1)} MiB; configs are capped at ${MAX_CONFIG_BYTES / 1024 / 1024} MiB.`, {
    code: 'CONFIG_TOO_LARGE',
    hint: 'Check the path: this is not a ups config (they are a few KB of YAML).',
    exitCode: ExitCode.USAGE,
    details: {file: shown, bytes, cap: MAX_CONFIG_BYTES},
  })

class ConfigTooLarge extends Error {
  constructor(readonly bytes: number) {
    super('config too large')
  }
}

const realDeps = (): LoadDeps => ({
  async readFile(p) {
    const {size} = await stat(p)
    if (size > MAX_CONFIG_BYTES) throw new ConfigTooLarge(size)
    return fsReadFile(p, 'utf8')
  },
  env: process.env,
  cwd: process.cwd(),
})

/** Shows paths relative to the working directory, as the user typed them. */
export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path)
  return rel && !rel.startsWith('..') ? rel : path
}

export function formatLocation(loc: SourceLocation | undefined): string {
  if (!loc) return ''
  return loc.line > 0 ? `${loc.file}:${loc.line}:${loc.column}` : loc.file
}

export async function loadRawConfig(path: string, options: LoadOptions = {}): Promise<RawConfig> {
  const deps = {...realDeps(), ...options.deps}
  const files: string[] = []
  const sources: SourceMap = new Map()
  const raw = await loadFile(resolve(deps.cwd, path), [], deps, files, sources)
  delete raw.include
  for (const override of options.overrides ?? []) applyOverride(raw, sources, override)
  interpolate(raw, sources, deps.env)
  const data = raw.data
  if (isPlainObject(data) && (data.root === undefined || data.root === null) && deps.env.PDEBENCH_ROOT) {
    data.root = deps.env.PDEBENCH_ROOT
    sources.set('data.root', {file: '$PDEBENCH_ROOT', line: 0, column: 0})
  }
  return {raw, sources, files}
}

async function loadFile(file: string, chain: string[], deps: LoadDeps, files: string[], sources: SourceMap): Promise<Obj> {
  const shown = displayPath(file, deps.cwd)
  if (chain.includes(file)) {
    const cycle = [...chain.slice(chain.indexOf(file)), file].map((f) => displayPath(f, deps.cwd)).join(' -> ')
    throw new UserError(`Config include cycle: ${cycle}.`, {
      code: 'CONFIG_INCLUDE_CYCLE',
      hint: 'Remove one of these `include:` lines so the chain ends.',
      exitCode: ExitCode.USAGE,
    })
  }
  let text: string
  try {
    text = await deps.readFile(file)
  } catch (error) {
    if (error instanceof ConfigTooLarge) throw tooLarge(shown, error.bytes)
    throw fsError(error, shown, 'config file')
  }
  if (text.length > MAX_CONFIG_BYTES) throw tooLarge(shown, Buffer.byteLength(text))
  files.push(file)
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {lineCounter, uniqueKeys: true, prettyErrors: false})
  if (doc.errors.length > 0) {
    const err = doc.errors[0]
    const pos = lineCounter.linePos(err.pos[0])
    const reason = err.message.split('\n')[0].replace(/ at line \d+, column \d+.*$/, '')
    throw new UserError(`${shown}:${pos.line}:${pos.col}: YAML syntax error: ${reason}`, {
      code: 'CONFIG_PARSE',
      hint: 'Fix the YAML at that position (indentation, a missing colon, an unclosed quote or bracket).',
      exitCode: ExitCode.USAGE,
      details: {file: shown, line: pos.line, column: pos.col},
    })
  }
  refuseForbiddenKeys(doc, shown, lineCounter)
  let value: unknown
  try {
    value = doc.toJS({maxAliasCount: MAX_ALIAS_COUNT}) ?? {}
  } catch (error) {
    // yaml throws a ReferenceError when aliases expand past maxAliasCount (a "billion laughs").
    const pos = lineCounter.linePos(firstNestedAlias(doc)?.range?.[0] ?? 0)
    throw new UserError(`${shown}:${pos.line}:${pos.col}: YAML aliases expand too far (${(error as Error).message}).`, {
      code: 'CONFIG_ALIAS_BOMB',
      hint: `A config may expand at most ${MAX_ALIAS_COUNT} aliases (*name); write the values out instead of nesting aliases of aliases.`,
      exitCode: ExitCode.USAGE,
      details: {file: shown, line: pos.line, column: pos.col},
    })
  }
  if (!isPlainObject(value)) {
    throw new UserError(`${shown}:1:1: a config must be a YAML mapping (key: value lines), not a ${Array.isArray(value) ? 'list' : typeof value}.`, {
      code: 'CONFIG_NOT_MAPPING',
      hint: 'Start from configs/train_burgers_32dim.yaml.',
      exitCode: ExitCode.USAGE,
    })
  }
  const own: SourceMap = new Map()
  collectSources(doc.contents, [], shown, lineCounter, own)

  // Includes first, in order; this file's keys go on top.
  let merged: Obj = {}
  const includes = value.include === undefined ? [] : Array.isArray(value.include) ? value.include : [value.include]
  for (const inc of includes) {
    if (typeof inc !== 'string' || inc.length === 0) {
      throw new UserError(`${formatLocation(own.get('include')) || shown}: \`include\` must be a path or a list of paths.`, {
        code: 'CONFIG_INCLUDE_INVALID',
        exitCode: ExitCode.USAGE,
      })
    }
    const target = resolve(dirname(file), /\.ya?ml$/.test(extname(inc)) ? inc : `${inc}.yaml`)
    try {
      merged = deepMerge(merged, await loadFile(target, [...chain, file], deps, files, sources))
    } catch (error) {
      if (error instanceof UserError && error.code === 'FS_ENOENT') {
        throw new UserError(`${formatLocation(own.get('include')) || shown}: included config ${displayPath(target, deps.cwd)} does not exist.`, {
          code: 'CONFIG_INCLUDE_MISSING',
          hint: 'Include paths are relative to the including file; `.yaml` is appended when missing.',
          exitCode: ExitCode.USAGE,
        })
      }
      throw error
    }
  }
  for (const [k, v] of own) sources.set(k, v)
  return deepMerge(merged, value)
}

/** `__proto__`, `constructor` or `prototype` as a key anywhere (lists of maps included) is an error at its line. */
function refuseForbiddenKeys(doc: Document, shown: string, lc: LineCounter): void {
  visit(doc, {
    Pair(_, pair) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined
      if (key === undefined || !FORBIDDEN_KEYS.has(key)) return
      const pos = lc.linePos((pair.key as Node).range?.[0] ?? 0)
      throw new UserError(`${shown}:${pos.line}:${pos.col}: the key "${key}" is not allowed in a config.`, {
        code: 'CONFIG_FORBIDDEN_KEY',
        hint: `${[...FORBIDDEN_KEYS].join(', ')} would reach the prototype of every object; rename or remove the key.`,
        exitCode: ExitCode.USAGE,
        details: {file: shown, line: pos.line, column: pos.col, key},
      })
    },
  })
}

/** The first alias whose anchor itself holds aliases: where an alias bomb starts to multiply. */
function firstNestedAlias(doc: Document): Node | undefined {
  let first: Node | undefined
  let nested: Node | undefined
  visit(doc, {
    Alias(_, alias) {
      first ??= alias
      const target = alias.resolve(doc)
      let inner = false
      if (target) visit(target as Node, {Alias: () => ((inner = true), visit.BREAK)})
      if (inner) {
        nested = alias
        return visit.BREAK
      }
    },
  })
  return nested ?? first
}

function collectSources(node: unknown, path: string[], file: string, lc: LineCounter, out: SourceMap): void {
  if (!isMap(node)) return
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
    const keyPath = [...path, key]
    const range = (pair.key as Node | null)?.range
    if (range) {
      const pos = lc.linePos(range[0])
      out.set(keyPath.join('.'), {file, line: pos.line, column: pos.col})
    }
    if (isMap(pair.value)) collectSources(pair.value, keyPath, file, lc, out)
    else if (isSeq(pair.value)) continue
  }
}

/** Maps merge key by key; anything else (lists included) is replaced by the later value. */
export function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = {...base}
  for (const [key, value] of Object.entries(over)) {
    // Defence in depth: the loader refuses these keys, but a caller may pass any object.
    if (FORBIDDEN_KEYS.has(key)) continue
    const prev = Object.hasOwn(out, key) ? out[key] : undefined
    out[key] = isPlainObject(value) && isPlainObject(prev) ? deepMerge(prev, value) : value
  }
  return out
}

function applyOverride(raw: Obj, sources: SourceMap, override: string): void {
  const eq = override.indexOf('=')
  const path = eq > 0 ? override.slice(0, eq).trim() : ''
  if (!path || path.split('.').some((p) => p === '')) {
    throw new UserError(`--set ${override}: expected KEY.PATH=VALUE, e.g. --set training.batch_size=16.`, {
      code: 'CONFIG_SET_INVALID',
      exitCode: ExitCode.USAGE,
    })
  }
  const keys = path.split('.')
  let value: unknown
  try {
    value = parseYaml(override.slice(eq + 1))
  } catch (error) {
    throw new UserError(`--set ${override}: the value is not valid YAML (${(error as Error).message.split('\n')[0]}).`, {
      code: 'CONFIG_SET_INVALID',
      hint: 'Quote strings with special characters, e.g. --set \'logging.wandb.tags=[a, b]\'.',
      exitCode: ExitCode.USAGE,
    })
  }
  const bad = keys.find((k) => FORBIDDEN_KEYS.has(k)) ?? forbiddenKeyIn(value)
  if (bad) {
    throw new UserError(`--set ${override}: the key "${bad}" is not allowed in a config.`, {
      code: 'CONFIG_FORBIDDEN_KEY',
      hint: `${[...FORBIDDEN_KEYS].join(', ')} would reach the prototype of every object; name a config key, e.g. --set training.batch_size=16.`,
      exitCode: ExitCode.USAGE,
    })
  }
  let node: Obj = raw
  for (const key of keys.slice(0, -1)) {
    if (!Object.hasOwn(node, key) || !isPlainObject(node[key])) node[key] = {}
    node = node[key] as Obj
  }
  node[keys.at(-1)!] = value ?? null
  sources.set(path, {file: `--set ${path}`, line: 0, column: 0})
}

/** The first forbidden own key anywhere in a parsed value (yaml defines `__proto__` as an own key). */
function forbiddenKeyIn(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    for (const v of value) {
      const bad = forbiddenKeyIn(v)
      if (bad) return bad
    }
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      const bad = FORBIDDEN_KEYS.has(k) ? k : forbiddenKeyIn(v)
      if (bad) return bad
    }
  }
  return undefined
}

const REF = /\$\{([^}]+)\}/g

export function getPath(obj: unknown, path: string): unknown {
  let node: unknown = obj
  for (const key of path.split('.')) {
    if ((!isPlainObject(node) && !Array.isArray(node)) || !Object.hasOwn(node, key)) return undefined
    node = (node as Obj)[key]
  }
  return node
}

/** Resolves `${a.b}` from the merged config and `${env:NAME}` / `${env:NAME:-default}` from the environment. */
function interpolate(raw: Obj, sources: SourceMap, env: NodeJS.ProcessEnv): void {
  const resolveString = (text: string, at: string, depth: number): unknown => {
    const fail = (why: string, hint: string) => {
      const loc = formatLocation(sources.get(at))
      return new UserError(`${loc ? loc + ': ' : ''}${at}: ${why}`, {code: 'CONFIG_INTERPOLATION', hint, exitCode: ExitCode.CHECK_FAILED})
    }
    if (depth > 10) throw fail(`\${...} references nest too deep (a reference cycle?) in "${text}".`, 'Make sure no key refers back to itself.')
    const lookup = (expr: string): unknown => {
      const ref = expr.trim()
      if (ref.startsWith('env:')) {
        const [name, fallback] = ref.slice(4).split(':-')
        const value = env[name]
        if (value !== undefined && value !== '') return value
        if (fallback !== undefined) return fallback
        throw fail(`environment variable ${name} is not set (used as \${${ref}}).`, `export ${name}=... or write \${env:${name}:-default}.`)
      }
      const value = getPath(raw, ref)
      if (value === undefined) throw fail(`\${${ref}} refers to a key that does not exist.`, 'Check the spelling of the key path (dot-separated, e.g. ${latent.dim}).')
      return typeof value === 'string' && value.includes('${') ? resolveString(value, ref, depth + 1) : value
    }
    const whole = text.match(/^\$\{([^}]+)\}$/)
    if (whole) return lookup(whole[1])
    return text.replace(REF, (_, expr: string) => {
      const value = lookup(expr)
      return typeof value === 'object' ? JSON.stringify(value) : String(value)
    })
  }
  const walk = (node: unknown, path: string[]): unknown => {
    if (typeof node === 'string') return node.includes('${') ? resolveString(node, path.join('.'), 0) : node
    if (Array.isArray(node)) return node.map((v, i) => walk(v, [...path, String(i)]))
    if (isPlainObject(node)) {
      for (const [k, v] of Object.entries(node)) node[k] = walk(v, [...path, k])
    }
    return node
  }
  walk(raw, [])
}
