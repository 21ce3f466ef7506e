/**
 * `ups cleanup` (runbook MAINT-001): destroy stopped instances older than N, move old run
 * directories under archive/runs/, delete old latent caches. Plans first; acts only with
 * `yes`. A running instance, a run in progress (running/created with activity in the last
 * 24 h), a run directory whose lock a live process holds, and a run whose instance still runs
 * are never touched.
 */
import {cp, readdir, rename, rm, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {loadConfig} from '../config/index.js'
import {RUN_LOCK_FILE, listRuns, runDirLockHolder} from '../tracking/index.js'
import {type Instance, type Provider, recordDestroyed} from '../vast/index.js'
import {isUserError} from '../util/errors.js'
import {type LockInfo, acquireLock, describeHolder} from '../util/lock.js'
import {formatAge} from './duration.js'
import {readLaunchRecords, type LaunchRecord} from './launch-records.js'
import {RUN_ACTIVE, readRunTimes} from './run-times.js'

export const IN_PROGRESS_MS = 24 * 3_600_000

export interface CleanupOptions {
  stoppedOlderThanMs: number
  archiveRunsOlderThanMs: number
  cacheOlderThanMs: number
  runsRoot: string
  archiveRoot: string
  cacheDirs: string[]
  /** Also clean the latent cache this config names (training.latent_cache_dir). */
  configPath?: string
  launchRecords?: string
  yes: boolean
}

export interface CleanupDeps {
  provider: Pick<Provider, 'list' | 'destroy'>
  now: () => Date
}

interface Item {
  /** What happens (or would happen) to it. */
  action: 'destroy' | 'archive' | 'delete' | 'skip'
  reason: string
  ageMs: number
  done?: boolean
  error?: string
}
export interface InstanceItem extends Item {
  id: number
  status: string | null
  label: string | null
}
export interface RunItem extends Item {
  runId: string
  path: string
  status: string
  target?: string
  /** The live process holding the run directory's lock, when that is why it is kept. */
  holder?: string
}
export interface CacheItem extends Item {
  path: string
  bytes: number
}

export interface CleanupResult {
  dryRun: boolean
  instances: InstanceItem[]
  runs: RunItem[]
  caches: CacheItem[]
  summary: {destroy: number; archive: number; delete: number; bytesFreed: number; errors: number}
  notes: string[]
}

export async function cleanup(options: CleanupOptions, deps: CleanupDeps): Promise<CleanupResult> {
  const now = deps.now().getTime()
  const notes: string[] = []
  const records = options.launchRecords ? (await readLaunchRecords(options.launchRecords)).records : []
  let instances: Instance[] = []
  let vastOk = true
  try {
    instances = await deps.provider.list()
  } catch (error) {
    if (!isUserError(error)) throw error
    vastOk = false
    notes.push(`vastai show instances failed (${error.message}): no instance is destroyed, and runs launched with ups launch are kept`)
  }
  const instanceItems = planInstances(instances, records, options, now)
  const runItems = await planRuns(options, instances, records, vastOk, now)
  const cacheDirs = [...options.cacheDirs]
  if (options.configPath) {
    const dir = (await loadConfig(options.configPath)).config.training?.latent_cache_dir
    if (dir && !cacheDirs.includes(dir)) cacheDirs.push(dir)
  }
  const cacheItems = await planCaches(cacheDirs, options.cacheOlderThanMs, now, notes)

  if (options.yes) {
    for (const i of instanceItems.filter((x) => x.action === 'destroy')) {
      await attempt(i, () => deps.provider.destroy(i.id))
      if (i.done && options.launchRecords) {
        // Its launch record learns when it ended; the destroy itself already happened.
        await recordDestroyed(options.launchRecords, i.id, {at: deps.now(), by: 'ups cleanup'}).catch((error: Error) =>
          notes.push(`instance ${i.id} was destroyed, but its launch record could not be updated: ${error.message}`),
        )
      }
    }
    for (const r of runItems.filter((x) => x.action === 'archive')) await archiveRun(r)
    for (const c of cacheItems.filter((x) => x.action === 'delete')) await attempt(c, () => rm(c.path, {recursive: true, force: true}))
  }
  const all = [...instanceItems, ...runItems, ...cacheItems]
  return {
    dryRun: !options.yes,
    instances: instanceItems,
    runs: runItems,
    caches: cacheItems,
    summary: {
      destroy: instanceItems.filter((x) => x.action === 'destroy').length,
      archive: runItems.filter((x) => x.action === 'archive').length,
      delete: cacheItems.filter((x) => x.action === 'delete').length,
      bytesFreed: cacheItems.filter((x) => x.action === 'delete' && (x.done || !options.yes)).reduce((s, c) => s + c.bytes, 0),
      errors: all.filter((x) => x.error).length,
    },
    notes,
  }
}

async function attempt(item: Item, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn()
    item.done = true
  } catch (error) {
    item.done = false
    item.error = (error as Error).message
  }
}

const ALIVE = new Set(['running', 'loading', 'created', 'scheduling'])

/**
 * Vast reports no stop time, so a stopped instance's age runs from the last sign of life we
 * know: its start date, its launch record's end, its run's last activity (never younger).
 */
function planInstances(instances: Instance[], records: LaunchRecord[], options: CleanupOptions, now: number): InstanceItem[] {
  return instances.map((i) => {
    const base = {id: i.id, status: i.status, label: i.label}
    const record = records.find((r) => r.instance_id === i.id)
    const last = Math.max((i.startDate ?? 0) * 1000, record?.ended_at ? Date.parse(record.ended_at) : 0, record?.started_at ? Date.parse(record.started_at) : 0)
    const ageMs = last > 0 ? now - last : 0
    if (ALIVE.has(i.status ?? 'scheduling') || (i.intendedStatus === 'running' && i.status !== 'exited')) {
      return {...base, action: 'skip' as const, reason: `${i.status ?? 'scheduling'}: never touched`, ageMs}
    }
    if (last === 0) return {...base, action: 'skip' as const, reason: 'age unknown (no start date)', ageMs}
    if (ageMs < options.stoppedOlderThanMs) return {...base, action: 'skip' as const, reason: `${i.status} for at most ${formatAge(ageMs)}: too recent`, ageMs}
    return {...base, action: 'destroy' as const, reason: `${i.status}, last active ${formatAge(ageMs)} ago`, ageMs}
  })
}

async function planRuns(options: CleanupOptions, instances: Instance[], records: LaunchRecord[], vastOk: boolean, now: number): Promise<RunItem[]> {
  const out: RunItem[] = []
  for (const dir of await listRuns(options.runsRoot)) {
    const times = await readRunTimes(dir.path)
    if (!times) continue
    const ageMs = now - times.lastActivityMs
    if (ageMs < options.archiveRunsOlderThanMs && !(RUN_ACTIVE.has(times.status) && ageMs < IN_PROGRESS_MS)) continue
    const item = {runId: dir.id, path: dir.path, status: times.status, ageMs}
    const record = records.find((r) => r.run_id === dir.id)
    const instance = record ? instances.find((i) => i.id === record.instance_id) : undefined
    const target = join(options.archiveRoot, dir.id)
    const holder = await runDirLockHolder(dir.path)
    if (holder) out.push({...item, action: 'skip', reason: `in use by ${describeHolder(holder.info)}`, holder: describeHolder(holder.info)})
    else if (RUN_ACTIVE.has(times.status) && ageMs < IN_PROGRESS_MS) out.push({...item, action: 'skip', reason: `in progress (${times.status}, active ${formatAge(ageMs)} ago)`})
    else if (instance && ALIVE.has(instance.status ?? 'scheduling')) out.push({...item, action: 'skip', reason: `its instance ${instance.id} is ${instance.status}`})
    else if (record && !vastOk) out.push({...item, action: 'skip', reason: `launched on instance ${record.instance_id}, whose state is unknown`})
    else if (await exists(target)) out.push({...item, action: 'skip', reason: `${target} already exists`})
    else out.push({...item, action: 'archive', reason: `${times.status}, last active ${formatAge(ageMs)} ago`, target})
  }
  return out
}

/**
 * Moves a run directory holding its lock, so no `ups resume` starts writing it mid-move; one
 * that took the lock since the plan keeps it (skipped, not an error).
 */
async function archiveRun(r: RunItem): Promise<void> {
  let lock
  try {
    lock = await acquireLock(join(r.path, RUN_LOCK_FILE), {command: 'ups cleanup', what: `run directory ${r.path}`, code: 'RUNDIR_LOCKED'})
  } catch (error) {
    if (!(isUserError(error) && error.code === 'RUNDIR_LOCKED')) throw error
    const holder = describeHolder((error.details?.holder as LockInfo | null | undefined) ?? null)
    Object.assign(r, {action: 'skip', reason: `in use by ${holder}`, holder})
    return
  }
  try {
    await attempt(r, async () => {
      await moveDir(r.path, r.target!)
      // The lock moved with the directory; release() finds nothing at the old path.
      await rm(join(r.target!, RUN_LOCK_FILE), {force: true})
    })
  } finally {
    await lock.release()
  }
}

async function planCaches(dirs: string[], olderThanMs: number, now: number, notes: string[]): Promise<CacheItem[]> {
  const out: CacheItem[] = []
  for (const root of dirs) {
    if (!(await exists(root))) continue
    for (const folder of await cacheFolders(root, 0)) {
      const {newest, bytes} = await usage(folder)
      const ageMs = now - newest
      if (ageMs < olderThanMs) continue
      out.push({path: folder, bytes, ageMs, action: 'delete', reason: `untouched for ${formatAge(ageMs)}`})
    }
  }
  if (dirs.length > 0 && out.length === 0) notes.push(`no latent cache older than the limit in ${dirs.join(', ')}`)
  return out
}

/** Folders holding a meta.json (a latent cache), the root included, up to 3 levels down. */
async function cacheFolders(dir: string, depth: number): Promise<string[]> {
  if (await exists(join(dir, 'meta.json'))) return [dir]
  if (depth >= 3) return []
  let entries
  try {
    entries = await readdir(dir, {withFileTypes: true})
  } catch {
    return []
  }
  const out: string[] = []
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) if (e.isDirectory()) out.push(...(await cacheFolders(join(dir, e.name), depth + 1)))
  return out
}

async function usage(dir: string): Promise<{newest: number; bytes: number}> {
  let newest = (await stat(dir)).mtimeMs
  let bytes = 0
  for (const e of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, e.name)
    if (e.isDirectory()) {
      const sub = await usage(path)
      newest = Math.max(newest, sub.newest)
      bytes += sub.bytes
    } else {
      const s = await stat(path)
      newest = Math.max(newest, s.mtimeMs)
      bytes += s.size
    }
  }
  return {newest, bytes}
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** rename, or copy + remove across filesystems. */
async function moveDir(from: string, to: string): Promise<void> {
  const {mkdir} = await import('node:fs/promises')
  await mkdir(resolve(to, '..'), {recursive: true})
  try {
    await rename(from, to)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error
    await cp(from, to, {recursive: true, errorOnExist: true, force: false, preserveTimestamps: true})
    await rm(from, {recursive: true, force: true})
  }
}

const mb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`)

export function renderCleanup(r: CleanupResult): string {
  const L: string[] = [r.dryRun ? 'Dry run: nothing changed. Rerun with --yes to do this.' : 'Cleanup done.', '']
  const verb = (item: Item, what: string) => (r.dryRun || item.action === 'skip' ? what : item.done ? `${what}: done` : `${what}: FAILED (${item.error})`)
  L.push(`Stopped instances to destroy: ${r.summary.destroy}`)
  for (const i of r.instances) L.push(`  ${i.action === 'destroy' ? verb(i, 'destroy') : 'keep'}  ${i.id}${i.label ? ` (${i.label})` : ''}  ${i.reason}`)
  L.push(`Runs to archive: ${r.summary.archive}`)
  for (const x of r.runs) L.push(`  ${x.action === 'archive' ? verb(x, `move -> ${x.target}`) : 'keep'}  ${x.runId}  ${x.reason}`)
  L.push(`Latent caches to delete: ${r.summary.delete} (${mb(r.caches.reduce((s, c) => s + c.bytes, 0))})`)
  for (const c of r.caches) L.push(`  ${verb(c, 'delete')}  ${c.path}  ${mb(c.bytes)}, ${c.reason}`)
  for (const n of r.notes) L.push(`note: ${n}`)
  return L.join('\n')
}
