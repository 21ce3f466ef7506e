/**
 * `ups data validate`: per file, in order (a failed step skips the ones that need it):
 * exists and non-empty, opens as HDF5, expected datasets with the task's rank, float dtype,
 * coordinates strictly increasing, a streamed scan of the values (NaN/Inf, constant samples,
 * |value| > 1e10; `quick` scans 10% of the samples), and size/checksum against a manifest.
 * A raw PDEBench file is checked once per split over that split's sample indices. Across splits,
 * no file or sample may be shared (overlap.ts).
 * Failing files can be quarantined: moved (never deleted) with a `.reason.json` beside them.
 */
import {createHash} from 'node:crypto'
import {copyFile, mkdir, rename, stat, unlink} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {writeJsonAtomic} from '../util/fs.js'
import {isUserError} from '../util/errors.js'
import {firstLine} from './h5.js'
import {type ManifestEntry, fileChecksum, findManifestEntry, loadManifest} from './manifest.js'
import {OVERLAP_FIX, findOverlaps, type SplitFile} from './overlap.js'
import {DEFAULT_READ_BUDGET_BYTES, type Dataset, listShards, openDataset, openDatasetFiles} from './pdebench.js'
import {RAW_FILE_PATTERNS} from './raw-names.js'
import {type DataSource, missingDataHint, resolveTaskFiles} from './source.js'
import {type IndexRanges, formatRanges, fullSplitSpec} from './split.js'
import {checkSplit, taskSpatialDims} from './tasks.js'
import {scanValues} from './scan.js'

export const CHECK_IDS = ['exists', 'hdf5', 'layout', 'dtype', 'coordinates', 'values', 'manifest', 'disjoint'] as const
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
  /** What to do about missing data. */
  hint?: string
  /** Set when this split is a sample-index split of a raw PDEBench file. */
  rawSplit?: {total: number; ranges: IndexRanges; method: string}
}

export interface ValidateOptions {
  root: string
  tasks: string[]
  /** Splits to check; 'all' means train, val (or valid) and test. */
  splits: string[] | 'all'
  manifest?: string
  quick?: boolean
  quarantineDir?: string
  /** The config's data.file / data.raw_split (which raw file, how it is split). */
  source?: DataSource | null
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
  const manifest = options.manifest ? {entries: await loadManifest(options.manifest), checksums: new Map<string, Promise<string>>()} : null
  const reports: FileReport[] = []
  const fingerprints = new Map<FileReport, string | null>()
  const source = options.source ?? {}
  for (const task of options.tasks) {
    for (const split of await resolveSplits(options.root, task, options.splits, source)) {
      const found = await resolveTaskFiles(options.root, task, split, source)
      if (found.kind === 'none') {
        const path = join(options.root, `${task}_${split}.h5`)
        const raw = RAW_FILE_PATTERNS[task] ? ` or a raw PDEBench file (${RAW_FILE_PATTERNS[task].example})` : ''
        const r = missingReport(task, split, path, `no ${task}_${split}.h5, ${task}_${split}_*.h5${raw} in ${options.root}`)
        r.hint = await missingDataHint(options.root, task)
        reports.push(r)
        continue
      }
      const files = found.kind === 'raw' ? [found.file] : found.files
      for (const path of files) {
        const {report, fingerprint} = await validateFile(path, task, split, options, manifest, deps, found.kind === 'raw')
        fingerprints.set(report, fingerprint)
        reports.push(report)
      }
    }
  }
  const others = options.splits === 'all' ? [] : await otherSplitFiles(options.root, options.tasks, options.splits, source)
  await checkDisjoint(reports, fingerprints, others)
  const moved = new Set<string>()
  for (const r of reports) {
    // A file that is only shared with another split is not damaged: nothing to re-fetch or move.
    const damaged = r.checks.some((c) => c.status === 'fail' && c.id !== 'disjoint')
    if (damaged && !r.hint) r.refetch = refetchCommand(r, options.root, manifest?.entries ?? null)
    // The splits of one raw file are one file: move it once.
    if (damaged && options.quarantineDir && r.checks[0].status === 'ok' && !moved.has(r.path)) {
      moved.add(r.path)
      r.quarantinedTo = await quarantine(r, options.quarantineDir, deps.now())
    }
  }
  return {ok: reports.every((r) => r.ok), root: options.root, quick: Boolean(options.quick), files: reports}
}

async function resolveSplits(root: string, task: string, splits: string[] | 'all', source: DataSource): Promise<string[]> {
  if (splits !== 'all') return splits.map(checkSplit)
  if ((await resolveTaskFiles(root, task, 'train', source)).kind === 'raw') {
    // A raw file has the splits its plan gives samples to (val 0 means no val split).
    const spec = fullSplitSpec(source.split ?? {})
    return ['train', ...(spec.val > 0 ? ['val'] : []), ...(spec.test > 0 ? ['test'] : [])]
  }
  // `val` and `valid` are the same split under two spellings: check whichever exists.
  const hasValid = (await listShards(root, task, 'valid', source)).length > 0 && (await listShards(root, task, 'val', source)).length === 0
  return ['train', hasValid ? 'valid' : 'val', 'test']
}

/**
 * The shard files of the splits not being validated: a split checked alone must still not share a
 * file with the others (compared by path and inode; nothing is read). Index splits of one raw file
 * are disjoint by construction, so only shards are listed.
 */
async function otherSplitFiles(root: string, tasks: string[], checked: string[], source: DataSource): Promise<SplitFile[]> {
  const out: SplitFile[] = []
  const seen = new Set(checked.map((s) => (s === 'valid' ? 'val' : s)))
  for (const task of tasks) {
    for (const split of ['train', 'val', 'valid', 'test']) {
      if (seen.has(split === 'valid' ? 'val' : split)) continue
      const found = await resolveTaskFiles(root, task, split, source).catch(() => null)
      if (found?.kind === 'shards') for (const path of found.files) out.push({task, split, path, fingerprint: null})
    }
  }
  return out
}

/** The `disjoint` check: no file or sample shared between splits of a task. */
async function checkDisjoint(reports: FileReport[], fingerprints: Map<FileReport, string | null>, others: SplitFile[] = []): Promise<void> {
  const present = reports.filter((r) => r.checks[0].status === 'ok')
  const items: Array<SplitFile & {report?: FileReport}> = present.map((r) => ({
    task: r.task, split: r.split, path: r.path, ranges: r.rawSplit?.ranges, fingerprint: fingerprints.get(r) ?? null, report: r,
  }))
  const overlaps = await findOverlaps([...items, ...others])
  const problems = new Map<FileReport, string[]>()
  for (const o of overlaps) {
    for (const side of [o.a, o.b] as Array<SplitFile & {report?: FileReport}>) {
      if (side.report) problems.set(side.report, [...(problems.get(side.report) ?? []), o.reason])
    }
  }
  for (const r of present) {
    const check = r.checks.find((c) => c.id === 'disjoint')!
    const found = problems.get(r)
    if (found) {
      check.status = 'fail'
      check.detail = `${found.join('; ')}: one split's data would leak into another (test into training). Fix: ${OVERLAP_FIX}.`
      r.ok = false
    } else {
      check.status = 'ok'
      check.detail = r.rawSplit ? `samples ${formatRanges(r.rawSplit.ranges)} of ${r.rawSplit.total}, disjoint from the other splits` : 'shares no file or samples with another split'
    }
  }
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
  path: string, task: string, split: string, options: ValidateOptions, manifest: Manifest | null, deps: ValidateDeps, raw = false,
): Promise<{report: FileReport; fingerprint: string | null}> {
  const checks = new Map<CheckId, FileCheck>(CHECK_IDS.map((id) => [id, {id, status: 'skip', detail: ''}]))
  const set = (id: CheckId, status: CheckStatus, detail: string) => checks.set(id, {id, status, detail})
  let fingerprint: string | null = null
  let rawSplit: FileReport['rawSplit']
  const report = () => {
    const list = [...checks.values()]
    const r: FileReport = {task, split, path, ok: list.every((c) => c.status !== 'fail'), checks: list, numSamples, samplesScanned, ...(rawSplit ? {rawSplit} : {})}
    return {report: r, fingerprint}
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

  let ds: Dataset
  try {
    const readBudgetBytes = deps.readBudgetBytes ?? DEFAULT_READ_BUDGET_BYTES
    // A raw file: the view of this split's sample indices only.
    ds = raw
      ? await openDataset(options.root, task, split, {readBudgetBytes, source: options.source ?? {}})
      : await openDatasetFiles([path], task, {readBudgetBytes}, {root: options.root, split})
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
    if (ds.rawSplit) rawSplit = {total: ds.rawSplit.total, ranges: ds.rawSplit.ranges, method: ds.rawSplit.method}
    set('hdf5', 'ok', '')
    const part = ds.rawSplit ? `; ${split}: ${ds.numSamples} samples ${formatRanges(ds.rawSplit.ranges)} (${ds.rawSplit.method} split)` : ''
    set('layout', 'ok', `${layout.kind} ${layout.datasets.length > 3 ? `${layout.datasets.length} sample groups` : layout.datasets.join(', ')}: N=${layout.numSamples}, T=${layout.numFrames}, grid ${layout.spatial.join('x')}, C=${layout.channels}${part}`)
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
    // The first samples' bytes: two splits with equal hashes are copies of one another.
    if (ds.numSamples > 0) fingerprint = createHash('sha256').update(ds.readSamples(0, Math.min(2, ds.numSamples)).data).digest('hex')
  } finally {
    ds.close()
  }
  return report()
}

/** The manifest's entries, and the checksums computed so far (by type and path). */
interface Manifest {
  entries: ManifestEntry[]
  checksums: Map<string, Promise<string>>
}

async function checkManifest(path: string, size: number, root: string, manifest: Manifest, set: (id: CheckId, s: CheckStatus, d: string) => void) {
  const entry = findManifestEntry(manifest.entries, path, root)
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
      // The splits of one raw file are one file: hash it once.
      const type = entry.checksum_type ?? 'md5'
      const key = `${type}:${path}`
      if (!manifest.checksums.has(key)) manifest.checksums.set(key, fileChecksum(path, type))
      actual = await manifest.checksums.get(key)!
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
  // Real PDEBench data is fetched again, never replaced by generated data.
  if (RAW_FILE_PATTERNS[r.task]?.pattern.test(basename(r.path))) return `ups data fetch URL --name ${basename(r.path)} --to ${root}   (URL: the file's line in PDEBench's pdebench_data_urls.csv)`
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
