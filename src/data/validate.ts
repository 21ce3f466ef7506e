/**
 * `ups data validate`: per file, in order (a failed step skips the ones that need it):
 * exists and non-empty, opens as HDF5, expected datasets with the task's rank, float dtype,
 * coordinates strictly increasing, a streamed scan of the values (NaN/Inf, constant samples,
 * |value| > 1e10; `quick` scans 10% of the samples), and size/checksum against a manifest.
 * Failing files can be quarantined: moved (never deleted) with a `.reason.json` beside them.
 */
import {copyFile, mkdir, rename, stat, unlink} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {writeJsonAtomic} from '../util/fs.js'
import {isUserError} from '../util/errors.js'
import {firstLine} from './h5.js'
import {type ManifestEntry, fileChecksum, findManifestEntry, loadManifest} from './manifest.js'
import {DEFAULT_READ_BUDGET_BYTES, listShards, openDatasetFiles} from './pdebench.js'
import {checkSplit, taskSpatialDims} from './tasks.js'
import {scanValues} from './scan.js'

export const CHECK_IDS = ['exists', 'hdf5', 'layout', 'dtype', 'coordinates', 'values', 'manifest'] as const
export type CheckId = (typeof CHECK_IDS)[number]
export type CheckStatus = 'ok' | 'fail' | 'skip'

export interface FileCheck {
  id: CheckId
  status: CheckStatus
  detail: string
}

export interface FileReport {
  task: string
  split: string
  path: string
  ok: boolean
  checks: FileCheck[]
  numSamples: number | null
  samplesScanned: number
  quarantinedTo?: string
  /** The command that gets a good copy back. */
  refetch?: string
}

export interface ValidateOptions {
  root: string
  tasks: string[]
  /** Splits to check; 'all' means train, val (or valid) and test. */
  splits: string[] | 'all'
  manifest?: string
  quick?: boolean
  quarantineDir?: string
}

export interface ValidateDeps {
  now(): Date
  readBudgetBytes?: number
}

export interface ValidateResult {
  ok: boolean
  root: string
  quick: boolean
  files: FileReport[]
}

export async function validateData(options: ValidateOptions, deps: ValidateDeps): Promise<ValidateResult> {
  for (const t of options.tasks) taskSpatialDims(t)
  const manifest = options.manifest ? await loadManifest(options.manifest) : null
  const reports: FileReport[] = []
  for (const task of options.tasks) {
    for (const split of await resolveSplits(options.root, task, options.splits)) {
      const files = await listShards(options.root, task, split)
      if (files.length === 0) {
        const path = join(options.root, `${task}_${split}.h5`)
        reports.push(missingReport(task, split, path, `no ${task}_${split}.h5 or ${task}_${split}_*.h5 in ${options.root}`))
        continue
      }
      for (const path of files) reports.push(await validateFile(path, task, split, options, manifest, deps))
    }
  }
  for (const r of reports) {
    if (!r.ok) r.refetch = refetchCommand(r, options.root, manifest)
    if (!r.ok && options.quarantineDir && r.checks[0].status === 'ok') {
      r.quarantinedTo = await quarantine(r, options.quarantineDir, deps.now())
    }
  }
  return {ok: reports.every((r) => r.ok), root: options.root, quick: Boolean(options.quick), files: reports}
}

async function resolveSplits(root: string, task: string, splits: string[] | 'all'): Promise<string[]> {
  if (splits !== 'all') return splits.map(checkSplit)
  // `val` and `valid` are the same split under two spellings: check whichever exists.
  const hasValid = (await listShards(root, task, 'valid')).length > 0 && (await listShards(root, task, 'val')).length === 0
  return ['train', hasValid ? 'valid' : 'val', 'test']
}

function missingReport(task: string, split: string, path: string, detail: string): FileReport {
  return {
    task, split, path, ok: false, numSamples: null, samplesScanned: 0,
    checks: CHECK_IDS.map((id) => ({id, status: id === 'exists' ? 'fail' : 'skip', detail: id === 'exists' ? detail : ''})),
  }
}

const OPEN_ERROR_CHECK: Record<string, CheckId> = {
  DATA_FILE_MISSING: 'exists',
  DATA_NOT_HDF5: 'hdf5',
  DATA_WRONG_DTYPE: 'dtype',
}

async function validateFile(
  path: string, task: string, split: string, options: ValidateOptions, manifest: ManifestEntry[] | null, deps: ValidateDeps,
): Promise<FileReport> {
  const checks = new Map<CheckId, FileCheck>(CHECK_IDS.map((id) => [id, {id, status: 'skip', detail: ''}]))
  const set = (id: CheckId, status: CheckStatus, detail: string) => checks.set(id, {id, status, detail})
  const report = (): FileReport => {
    const list = [...checks.values()]
    return {task, split, path, ok: list.every((c) => c.status !== 'fail'), checks: list, numSamples, samplesScanned}
  }
  let numSamples: number | null = null
  let samplesScanned = 0

  let size: number
  try {
    size = (await stat(path)).size
  } catch {
    set('exists', 'fail', 'file does not exist')
    return report()
  }
  if (size === 0) {
    set('exists', 'fail', 'file is empty (0 bytes)')
    return report()
  }
  set('exists', 'ok', `${size} bytes`)

  // The manifest check needs only the bytes, so it runs even when the content is broken.
  if (manifest) await checkManifest(path, size, options.root, manifest, set)

  let ds
  try {
    ds = await openDatasetFiles([path], task, {readBudgetBytes: deps.readBudgetBytes ?? DEFAULT_READ_BUDGET_BYTES}, {root: options.root, split})
  } catch (error) {
    if (!isUserError(error)) throw error
    const failed = OPEN_ERROR_CHECK[error.code] ?? 'layout'
    for (const id of ['hdf5', 'layout', 'dtype'] as const) {
      if (id === failed) {
        set(id, 'fail', error.message.replace(`${path}: `, '').replace(path, 'the file'))
        break
      }
      set(id, 'ok', '')
    }
    return report()
  }
  try {
    const layout = ds.layouts[0]
    numSamples = ds.numSamples
    set('hdf5', 'ok', '')
    set('layout', 'ok', `${layout.kind} ${layout.datasets.length > 3 ? `${layout.datasets.length} sample groups` : layout.datasets.join(', ')}: N=${layout.numSamples}, T=${layout.numFrames}, grid ${layout.spatial.join('x')}, C=${layout.channels}`)
    set('dtype', 'ok', 'float')
    if (numSamples === 0) {
      set('values', 'fail', 'the file holds 0 samples: the split is empty')
      return report()
    }
    const coordProblems: string[] = []
    const coordsSeen: string[] = []
    for (const [axis, values] of [['t', layout.tStored], ['x', layout.coords.x], ['y', layout.coords.y]] as const) {
      if (!values) continue
      const name = layout.coordNames[axis] ?? axis
      coordsSeen.push(name)
      for (let i = 1; i < values.length; i++) {
        if (!(values[i] > values[i - 1])) {
          coordProblems.push(`${name} is not strictly increasing at index ${i} (${values[i - 1]} then ${values[i]})`)
          break
        }
      }
    }
    if (coordProblems.length > 0) set('coordinates', 'fail', coordProblems.join('; '))
    else set('coordinates', 'ok', coordsSeen.length ? `${coordsSeen.join(', ')} increasing` : 'none stored')

    let scan
    try {
      scan = scanValues(ds, {quick: Boolean(options.quick), budgetBytes: deps.readBudgetBytes ?? DEFAULT_READ_BUDGET_BYTES})
    } catch (error) {
      // A damaged chunk (bad deflate stream, truncated file) fails the read itself.
      set('values', 'fail', `reading the samples failed: ${firstLine(error)}`)
      return report()
    }
    samplesScanned = scan.samplesScanned
    set('values', scan.problems.length ? 'fail' : 'ok', scan.problems.length ? scan.problems.join('; ') : `${scan.samplesScanned} of ${ds.numSamples} samples scanned, range [${fmt(scan.min)}, ${fmt(scan.max)}]`)
  } finally {
    ds.close()
  }
  return report()
}

async function checkManifest(path: string, size: number, root: string, manifest: ManifestEntry[], set: (id: CheckId, s: CheckStatus, d: string) => void) {
  const entry = findManifestEntry(manifest, path, root)
  if (!entry) {
    set('manifest', 'skip', 'not listed in the manifest')
    return
  }
  if (entry.size_bytes !== undefined && entry.size_bytes !== size) {
    set('manifest', 'fail', `size ${size} bytes, manifest says ${entry.size_bytes}`)
    return
  }
  if (entry.checksum) {
    let actual: string
    try {
      actual = await fileChecksum(path, entry.checksum_type ?? 'md5')
    } catch {
      set('manifest', 'fail', `unsupported checksum_type "${entry.checksum_type}" (use md5, sha1 or sha256)`)
      return
    }
    if (actual !== entry.checksum) {
      set('manifest', 'fail', `${entry.checksum_type} ${actual}, manifest says ${entry.checksum}`)
      return
    }
  }
  set('manifest', 'ok', entry.checksum ? `${entry.checksum_type} matches` : 'size matches')
}

function refetchCommand(r: FileReport, root: string, manifest: ManifestEntry[] | null): string {
  const entry = manifest ? findManifestEntry(manifest, r.path, root) : undefined
  if (entry?.url) {
    const sum = entry.checksum ? ` --checksum ${entry.checksum_type ?? 'md5'}:${entry.checksum}` : ''
    return `ups data fetch ${entry.url} --to ${root}${sum}`
  }
  if (r.task === 'burgers1d' || r.task === 'advection1d') {
    return `ups data fetch SOURCE --to ${root}   (or regenerate: ups data generate ${r.task} --out ${root} with the original --samples/--nx/--nt/--seed)`
  }
  return `ups data fetch SOURCE --to ${root}   (SOURCE: the URL or rclone:REMOTE:path ${basename(r.path)} came from)`
}

async function quarantine(r: FileReport, dir: string, now: Date): Promise<string> {
  await mkdir(dir, {recursive: true})
  const name = basename(r.path)
  let dest = join(dir, name)
  for (let i = 1; await exists(dest); i++) dest = join(dir, `${name}.${i}`)
  try {
    await rename(r.path, dest)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error
    // Another filesystem: copy, check the copy, then drop the original (a move, not a delete).
    await copyFile(r.path, dest)
    if ((await stat(dest)).size !== (await stat(r.path)).size) throw new Error(`copy of ${r.path} to ${dest} is incomplete`)
    await unlink(r.path)
  }
  await writeJsonAtomic(`${dest}.reason.json`, {
    file: name, originalPath: r.path, quarantinedAt: now.toISOString(), task: r.task, split: r.split,
    failedChecks: r.checks.filter((c) => c.status === 'fail').map(({id, detail}) => ({id, detail})),
    refetch: r.refetch,
  })
  return dest
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v)
}
