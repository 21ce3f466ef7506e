/**
 * Checks a merged raw config against the schema: type errors name the key path and the YAML
 * line; keys the schema does not know are warnings with a "did you mean" suggestion.
 */
import {createRequire} from 'node:module'
import type {z} from 'zod'

import {type SourceLocation, type SourceMap, formatLocation, isPlainObject} from './load.js'
import {configSchema, type UpsConfig} from './schema.js'

export interface ConfigIssue {
  path: string
  message: string
  location?: SourceLocation
}

export interface UnknownKey {
  path: string
  location?: SourceLocation
  suggestion?: string
}

export interface ParsedConfig {
  config?: UpsConfig
  issues: ConfigIssue[]
  unknownKeys: UnknownKey[]
}

type AnySchema = z.ZodType & {def: Record<string, unknown> & {type: string}}

/** Strips optional/nullable/default wrappers to reach the schema that describes the value. */
function unwrap(schema: AnySchema): AnySchema {
  let s = schema
  while (['optional', 'nullable', 'default', 'prefault', 'readonly'].includes(s.def.type)) {
    s = s.def.innerType as AnySchema
  }
  return s
}

function objectShape(schema: AnySchema, value: unknown): Record<string, AnySchema> | undefined {
  const s = unwrap(schema)
  if (s.def.type === 'object') return (s as unknown as {shape: Record<string, AnySchema>}).shape
  if (s.def.type === 'union' && isPlainObject(value)) {
    for (const option of s.def.options as AnySchema[]) {
      const shape = objectShape(option, value)
      if (shape) return shape
    }
  }
  return undefined
}

/** Every key path the schema defines, for suggesting `optimizer.lr` when someone wrote `training.lr`. */
function schemaPaths(schema: AnySchema, prefix: string[] = [], out: string[] = []): string[] {
  const shape = objectShape(schema, {})
  if (!shape) return out
  for (const [key, child] of Object.entries(shape)) {
    const path = [...prefix, key]
    out.push(path.join('.'))
    if (prefix.length < 4) schemaPaths(child, path, out)
  }
  return out
}

let allPaths: string[] | undefined

export function findUnknownKeys(raw: unknown, sources: SourceMap, schema: AnySchema = configSchema as unknown as AnySchema): UnknownKey[] {
  allPaths ??= schemaPaths(configSchema as unknown as AnySchema)
  const out: UnknownKey[] = []
  const walk = (value: unknown, s: AnySchema, path: string[]) => {
    if (!isPlainObject(value)) return
    const shape = objectShape(s, value)
    if (!shape) return
    for (const [key, child] of Object.entries(value)) {
      const keyPath = [...path, key]
      if (key in shape) {
        walk(child, shape[key], keyPath)
        continue
      }
      out.push({path: keyPath.join('.'), location: sources.get(keyPath.join('.')), suggestion: suggest(key, Object.keys(shape), path)})
    }
  }
  walk(raw, schema, [])
  return out
}

// Loaded only when a config has an unknown key.
const distance = (a: string, b: string): number =>
  (createRequire(import.meta.url)('fastest-levenshtein') as {distance(a: string, b: string): number}).distance(a, b)

function suggest(key: string, siblings: string[], parent: string[]): string | undefined {
  // Short keys (lr, dt) are all close to each other: only a one-letter slip counts for them.
  const limit = key.length <= 3 ? 1 : Math.max(2, Math.floor(key.length / 3))
  let best: {name: string; dist: number} | undefined
  for (const name of siblings) {
    const dist = distance(key.toLowerCase(), name.toLowerCase())
    if (dist <= limit && (!best || dist < best.dist)) best = {name, dist}
  }
  // The same key under another section (training.lr -> optimizer.lr) beats a fuzzy sibling.
  const elsewhere = allPaths?.find((p) => p.split('.').at(-1) === key)
  if (best && (best.dist <= 1 || !elsewhere)) return [...parent, best.name].join('.')
  return elsewhere
}

/** The location of the deepest key on `path` that we know a source for. */
export function locate(path: (string | number | symbol)[], sources: SourceMap): SourceLocation | undefined {
  for (let n = path.length; n > 0; n--) {
    const loc = sources.get(path.slice(0, n).map(String).join('.'))
    if (loc) return loc
  }
  return undefined
}

export function parseConfig(raw: Record<string, unknown>, sources: SourceMap): ParsedConfig {
  const unknownKeys = findUnknownKeys(raw, sources)
  const result = configSchema.safeParse(raw)
  if (result.success) return {config: result.data, issues: [], unknownKeys}
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(top level)'
    return {path, message: describeIssue(issue, raw), location: locate(issue.path as (string | number)[], sources)}
  })
  return {issues, unknownKeys}
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  if (issue.code === 'invalid_type') {
    let value: unknown = raw
    for (const key of issue.path) value = isPlainObject(value) || Array.isArray(value) ? (value as Record<string, unknown>)[key as string] : undefined
    if (value === undefined) return `is required (expected ${issue.expected})`
    // JSON.stringify shows NaN and Infinity as null; say what was really there.
    if (typeof value === 'number' && !Number.isFinite(value)) return `expected a finite number, got ${value}`
    return `expected ${issue.expected}, got ${JSON.stringify(value)}`
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `must be one of ${(issue.values as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
  }
  return issue.message
}

export function formatIssue(issue: ConfigIssue): string {
  const loc = formatLocation(issue.location)
  return `${loc ? loc + ': ' : ''}${issue.path}: ${issue.message}`
}

export function formatUnknownKey(key: UnknownKey): string {
  const loc = formatLocation(key.location)
  return `${loc ? loc + ': ' : ''}unknown key ${key.path}${key.suggestion ? ` (did you mean ${key.suggestion}?)` : ''}`
}
