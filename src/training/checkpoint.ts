/**
 * Our checkpoint format (pure tfjs has no file IO): a folder `<name>.ckpt/` holding
 *   weights.bin    every tensor's raw little-endian bytes, concatenated
 *   manifest.json  names, shapes, dtypes, byte offsets, sha256 of weights.bin and of the
 *                  manifest body, optimizer/scheduler state, epoch, step, RNG state, metadata
 * A checkpoint is written to a temp folder next to the target, fsynced, then swapped in by
 * renames; a crash between the renames leaves the old or the new folder under a recognisable
 * name, and the loaders below pick the newest one that verifies.
 */
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, open, readdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {syncDir} from '../util/fs.js'
import type {RngState} from './rng.js'

export interface NamedArray {
  name: string
  shape: number[]
  dtype: 'float32' | 'int32'
  data: Float32Array | Int32Array
}

export interface CheckpointPayload {
  tensors: NamedArray[]
  epoch: number
  step: number
  rng?: RngState
  optimizer?: unknown
  scheduler?: unknown
  metadata?: Record<string, unknown>
}

export interface TensorEntry {
  name: string
  shape: number[]
  dtype: 'float32' | 'int32'
  offset: number
  bytes: number
}

export interface ManifestBody {
  format: 'ups-checkpoint'
  version: 1
  epoch: number
  step: number
  tensors: TensorEntry[]
  weightsBytes: number
  weightsSha256: string
  rng: RngState | null
  optimizer: unknown
  scheduler: unknown
  metadata: Record<string, unknown>
}

export interface Manifest extends ManifestBody {
  manifestSha256: string
}

export interface LoadedCheckpoint extends CheckpointPayload {
  path: string
  manifest: Manifest
}

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex')

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'w', 0o644)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

function corrupt(path: string, reason: string): UserError {
  return new UserError(`Checkpoint ${path} is corrupt or incomplete: ${reason}.`, {
    code: 'CHECKPOINT_CORRUPT',
    hint: 'Resume picks the previous valid checkpoint automatically; delete this folder or retrain the stage if none is left.',
    exitCode: ExitCode.CHECK_FAILED,
  })
}

export interface SaveHooks {
  /** Test hook: runs after the old folder was moved aside and before the new one is moved in. */
  midSwap?: () => void | Promise<void>
}

/** Writes `path` (a `.ckpt` folder) atomically, replacing any existing checkpoint there. */
export async function saveCheckpoint(path: string, payload: CheckpointPayload, hooks: SaveHooks = {}): Promise<Manifest> {
  const parent = dirname(path)
  await mkdir(parent, {recursive: true})
  const tag = randomBytes(6).toString('hex')
  const tmp = join(parent, `.${basename(path)}.${tag}.tmp`)
  const old = join(parent, `.${basename(path)}.${tag}.old`)

  let total = 0
  const entries: TensorEntry[] = payload.tensors.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1)
    if (size !== t.data.length) throw new Error(`tensor ${t.name}: shape [${t.shape}] does not hold ${t.data.length} values`)
    const entry = {name: t.name, shape: [...t.shape], dtype: t.dtype, offset: total, bytes: t.data.byteLength}
    total += t.data.byteLength
    return entry
  })
  const weights = new Uint8Array(total)
  payload.tensors.forEach((t, i) => {
    weights.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), entries[i].offset)
  })
  const body: ManifestBody = {
    format: 'ups-checkpoint',
    version: 1,
    epoch: payload.epoch,
    step: payload.step,
    tensors: entries,
    weightsBytes: total,
    weightsSha256: sha256(weights),
    rng: payload.rng ?? null,
    optimizer: payload.optimizer ?? null,
    scheduler: payload.scheduler ?? null,
    metadata: payload.metadata ?? {},
  }
  const manifest: Manifest = {...body, manifestSha256: sha256(JSON.stringify(body))}

  await mkdir(tmp, {recursive: true})
  try {
    await writeSynced(join(tmp, 'weights.bin'), weights)
    await writeSynced(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n')
    await syncDir(tmp)
    const exists = await stat(path).then(() => true, () => false)
    if (exists) await rename(path, old)
    await hooks.midSwap?.()
    await rename(tmp, path)
    await syncDir(parent)
  } catch (error) {
    await rm(tmp, {recursive: true, force: true})
    throw error
  }
  await rm(old, {recursive: true, force: true})
  return manifest
}

/** Reads and verifies a checkpoint; any mismatch throws CHECKPOINT_CORRUPT. */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  let text: string
  let weights: Buffer
  try {
    text = await readFile(join(path, 'manifest.json'), 'utf8')
    weights = await readFile(join(path, 'weights.bin'))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      const missing = await stat(path).then(() => 'manifest.json or weights.bin is missing', () => 'the folder does not exist')
      throw corrupt(path, missing)
    }
    throw corrupt(path, `cannot be read (${(error as Error).message})`)
  }
  let manifest: Manifest
  try {
    manifest = JSON.parse(text) as Manifest
  } catch {
    throw corrupt(path, 'manifest.json is not valid JSON')
  }
  if (manifest?.format !== 'ups-checkpoint') throw corrupt(path, 'manifest.json is not a ups checkpoint manifest')
  const {manifestSha256, ...body} = manifest
  if (sha256(JSON.stringify(body)) !== manifestSha256) throw corrupt(path, 'manifest.json does not match its sha256')
  if (weights.byteLength !== manifest.weightsBytes) {
    throw corrupt(path, `weights.bin has ${weights.byteLength} bytes, the manifest says ${manifest.weightsBytes}`)
  }
  if (sha256(weights) !== manifest.weightsSha256) throw corrupt(path, 'weights.bin does not match its sha256')

  const tensors: NamedArray[] = manifest.tensors.map((t) => {
    // Copy into an aligned buffer: Buffer slices may start at any byte offset.
    const bytes = new Uint8Array(t.bytes)
    bytes.set(weights.subarray(t.offset, t.offset + t.bytes))
    const data = t.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer)
    return {name: t.name, shape: t.shape, dtype: t.dtype, data}
  })
  return {
    path,
    manifest,
    tensors,
    epoch: manifest.epoch,
    step: manifest.step,
    rng: manifest.rng ?? undefined,
    optimizer: manifest.optimizer ?? undefined,
    scheduler: manifest.scheduler ?? undefined,
    metadata: manifest.metadata,
  }
}

export interface SkippedCheckpoint {
  path: string
  reason: string
}

export interface LatestCheckpoint {
  checkpoint: LoadedCheckpoint | null
  /** Corrupt or partial checkpoints passed over, newest first: report them. */
  skipped: SkippedCheckpoint[]
}

const numbered = (stage: string, epoch: number): string => `${stage}_epoch${String(epoch).padStart(4, '0')}.ckpt`

/** `<dir>/<stage>_epochNNNN.ckpt`, the numbered checkpoint of one epoch. */
export const numberedCheckpointPath = (dir: string, stage: string, epoch: number): string => join(dir, numbered(stage, epoch))

/** Whether a folder name belongs to `stage`'s resumable checkpoints (last, numbered, swap leftovers). */
function isStageCandidate(name: string, stage: string): boolean {
  const esc = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const base = `${esc}(?:_epoch\\d+)?\\.ckpt`
  return new RegExp(`^(?:${base}|\\.${base}\\.[0-9a-z]+\\.(?:tmp|old))$`).test(name)
}

/**
 * The newest checkpoint of `stage` in `dir` that verifies, by (step, epoch): the last one,
 * the numbered ones and any folder a crash left mid-swap. Corrupt ones are skipped and reported.
 */
export async function latestValidCheckpoint(dir: string, stage: string): Promise<LatestCheckpoint> {
  const names = await readdir(dir).catch(() => [] as string[])
  const valid: LoadedCheckpoint[] = []
  const skipped: SkippedCheckpoint[] = []
  for (const name of names.filter((n) => isStageCandidate(n, stage))) {
    const path = join(dir, name)
    try {
      valid.push(await loadCheckpoint(path))
    } catch (error) {
      // A .tmp folder without a manifest is a write that never finished: not worth reporting.
      if (name.endsWith('.tmp') && (error as UserError).message.includes('missing')) continue
      skipped.push({path, reason: (error as Error).message})
    }
  }
  valid.sort((a, b) => b.step - a.step || b.epoch - a.epoch || rank(a.path) - rank(b.path))
  return {checkpoint: valid[0] ?? null, skipped}
}

// Prefer the regular folder over a swap leftover holding the same step.
const rank = (path: string): number => (basename(path).startsWith('.') ? 1 : 0)

/**
 * Saves the numbered checkpoint `<stage>_epochNNNN.ckpt` and deletes all but the newest `keep`
 * numbered ones of that stage.
 */
export async function saveNumberedCheckpoint(
  dir: string,
  stage: string,
  payload: CheckpointPayload,
  keep = 3,
  hooks: SaveHooks = {},
): Promise<{path: string; removed: string[]}> {
  const path = join(dir, numbered(stage, payload.epoch))
  await saveCheckpoint(path, payload, hooks)
  const re = new RegExp(`^${stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_epoch(\\d+)\\.ckpt$`)
  const existing = (await readdir(dir))
    .map((n) => ({n, m: re.exec(n)}))
    .filter((x) => x.m)
    .sort((a, b) => Number(b.m![1]) - Number(a.m![1]))
  const removed: string[] = []
  for (const {n} of existing.slice(keep)) {
    await rm(join(dir, n), {recursive: true, force: true})
    removed.push(join(dir, n))
  }
  return {path, removed}
}

/**
 * Removes the folders a killed swap left behind for `stage` (`.<stage>[_best|_ema|_epochN].ckpt.*.tmp|old`).
 * Only safe once resume has put its checkpoint in place under a regular name.
 */
export async function removeSwapLeftovers(dir: string, stage: string): Promise<string[]> {
  const esc = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const re = new RegExp(`^\\.${esc}(?:_best|_ema|_epoch\\d+)?\\.ckpt\\.[0-9a-z]+\\.(?:tmp|old)$`)
  const removed: string[] = []
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!re.test(name)) continue
    await rm(join(dir, name), {recursive: true, force: true})
    removed.push(join(dir, name))
  }
  return removed
}
