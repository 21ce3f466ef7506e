/**
 * Kernels per step, counted once per model and code: counting runs two real optimizer steps of
 * every stage on the tfjs-op path (seconds to tens of seconds on a CPU), and `ups launch`,
 * `ups recover` and `ups offers --config` each estimate the same config again. The count depends
 * only on the config, the data shape, the target backend and the training code, so the key hashes
 * all four (the code as the bytes of the training modules this process runs).
 * A cache: a lost or unreadable file is recounted, never an error.
 */
import {readdirSync, readFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {writeJsonAtomic} from '../util/fs.js'
import {canonicalJson, sha256} from '../util/hash.js'

/** Entries kept: enough for every config a team estimates, small enough to rewrite whole. */
const MAX_ENTRIES = 256
const FILE_NAME = 'kernel-counts.json'

/** `$UPS_HOME/cache/kernel-counts.json`, else `<home>/.ups/cache/kernel-counts.json`. */
export function kernelCachePath(env: NodeJS.ProcessEnv, home: string): string {
  return join(env.UPS_HOME || join(home, '.ups'), 'cache', FILE_NAME)
}

let fingerprint: string | undefined

/** sha256 over the training modules' bytes (compiled or source, whichever this process runs). */
export function trainingCodeFingerprint(): string {
  if (fingerprint) return fingerprint
  const root = fileURLToPath(new URL('../training/', import.meta.url))
  const files: string[] = []
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, {withFileTypes: true}).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, e.name)
      if (e.isDirectory()) walk(path)
      else if (/\.(js|ts)$/.test(e.name) && !e.name.endsWith('.d.ts')) files.push(path)
    }
  }
  walk(root)
  fingerprint = sha256(files.map((f) => `${f.slice(root.length)}\n${readFileSync(f, 'utf8')}`).join('\n'))
  return fingerprint
}

export function kernelCountKey(parts: unknown): string {
  return sha256(canonicalJson({code: trainingCodeFingerprint(), parts}))
}

type Entries = Record<string, {value: unknown; at: string}>

async function readEntries(path: string): Promise<Entries> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Entries) : {}
  } catch {
    return {}
  }
}

/** The cached value for `key`, else `compute()`'s, stored (newest MAX_ENTRIES kept). No path: no cache. */
export async function cachedKernelCount<T>(path: string | undefined, keyOf: () => string, compute: () => Promise<T>): Promise<T> {
  if (!path) return compute()
  const key = keyOf()
  const hit = (await readEntries(path))[key]
  if (hit) return hit.value as T
  const value = await compute()
  const entries = {...(await readEntries(path)), [key]: {value, at: new Date().toISOString()}}
  const kept = Object.entries(entries).sort((a, b) => b[1].at.localeCompare(a[1].at)).slice(0, MAX_ENTRIES)
  await writeJsonAtomic(path, Object.fromEntries(kept)).catch(() => undefined)
  return value
}
