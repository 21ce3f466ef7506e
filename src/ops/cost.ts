/**
 * `ups cost` (runbook MON-002): what is burning now (running instances, $/h, daily burn) and,
 * over a period, the runs launched, what they cost, the cost per successful run and the cost
 * of failed runs (waste). Launch cost = $/h from the launch record x runtime, where the runtime
 * ends at the record's end, now (instance still running), the run's last known time, or the
 * estimate, in that order; every assumption is listed in the result.
 */
import {join} from 'node:path'

import type {Instance, Provider} from '../vast/index.js'
import {isUserError} from '../util/errors.js'
import {readLaunchRecords, type LaunchRecord} from './launch-records.js'
import {RUN_ACTIVE, RUN_FAILURE, RUN_SUCCESS, readRunTimes} from './run-times.js'

export type CostPeriod = 'day' | 'week' | 'month'
export const PERIOD_DAYS: Record<CostPeriod, number> = {day: 1, week: 7, month: 30}

export interface CostOptions {
  period: CostPeriod
  runsRoot: string
  launchRecords: string
}

export interface CostDeps {
  provider: Pick<Provider, 'list'>
  now: () => Date
}

export interface RunningInstanceCost {
  id: number
  label: string | null
  gpu: string | null
  dph: number
  dailyBurnUsd: number
  uptimeHours: number | null
  runId?: string
}

export type EndBasis = 'record' | 'running' | 'run-dir' | 'estimate' | 'unknown'
/** rolled_back: `ups launch --wait` gave the instance back (or a duplicate was destroyed): billed briefly, wasted. */
export type Outcome = 'succeeded' | 'failed' | 'rolled_back' | 'running' | 'unknown'
/** Launch record statuses of a launch ups gave back. */
const ROLLED_BACK = new Set(['rolled_back', 'rollback_failed'])

export interface LaunchCost {
  instanceId: number
  runId?: string
  config?: string
  gpu?: string
  dph?: number
  startedAt: string
  endedAt?: string
  endBasis: EndBasis
  hours: number | null
  usd: number | null
  estimateUsd?: number
  outcome: Outcome
  outcomeBasis: string
  /** The instance's status on Vast now (null: not listed, destroyed or never seen). */
  instanceStatus: string | null
}

export interface CostResult {
  period: CostPeriod
  since: string
  until: string
  running: RunningInstanceCost[]
  hourlyBurnUsd: number
  dailyBurnUsd: number
  launches: LaunchCost[]
  totals: {
    runs: number
    succeeded: number
    failed: number
    /** Launches given back by ups (verification failed, duplicate instance): shown apart, counted as waste. */
    rolledBack: number
    running: number
    unknown: number
    totalUsd: number
    succeededUsd: number
    rolledBackUsd: number
    /** Cost of failed and rolled-back runs. */
    wasteUsd: number
    /** All spending divided by successful runs (null without one). */
    costPerSuccessfulRunUsd: number | null
    /** Launches whose cost could not be worked out (no $/h, or no start). */
    unpricedRuns: number
  }
  assumptions: string[]
  launchRecordsPath: string
  /** Set when `vastai show instances` failed: running costs are then unknown. */
  vastError?: string
}

export async function costReport(options: CostOptions, deps: CostDeps): Promise<CostResult> {
  const now = deps.now()
  const since = new Date(now.getTime() - PERIOD_DAYS[options.period] * 86_400_000)
  const assumptions: string[] = []
  let instances: Instance[] = []
  let vastError: string | undefined
  try {
    instances = await deps.provider.list()
  } catch (error) {
    if (!isUserError(error)) throw error
    vastError = error.message
    assumptions.push(`vastai show instances failed (${error.message}): running instances unknown; launches without an end are priced to their last known time`)
  }
  const read = await readLaunchRecords(options.launchRecords)
  if (!read.exists) assumptions.push(`no launch records at ${read.path}: nothing launched with ups launch here`)
  if (read.skipped.length > 0) assumptions.push(`${read.skipped.length} unreadable line(s) in ${read.path} skipped (lines ${read.skipped.map((s) => s.line).join(', ')})`)

  const byId = new Map(instances.map((i) => [i.id, i]))
  const runOf = new Map(read.records.map((r) => [r.instance_id, r.run_id]))
  const running: RunningInstanceCost[] = instances
    .filter((i) => i.status === 'running' && i.dphTotal !== null)
    .map((i) => ({
      id: i.id,
      label: i.label,
      gpu: i.gpuName ? `${i.numGpus ?? 1}x ${i.gpuName}` : null,
      dph: i.dphTotal!,
      dailyBurnUsd: i.dphTotal! * 24,
      uptimeHours: i.uptimeMins === null ? null : i.uptimeMins / 60,
      ...(runOf.get(i.id) ? {runId: runOf.get(i.id)} : {}),
    }))
  const hourlyBurnUsd = running.reduce((s, r) => s + r.dph, 0)

  const inPeriod = read.records.filter((r) => r.started_at && Date.parse(r.started_at) >= since.getTime() && Date.parse(r.started_at) <= now.getTime())
  const undated = read.records.filter((r) => !r.started_at).length
  if (undated > 0) assumptions.push(`${undated} launch record(s) without started_at left out`)
  const launches: LaunchCost[] = []
  for (const record of inPeriod.sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!))) {
    launches.push(await priceLaunch(record, byId.get(record.instance_id), options.runsRoot, now, vastError !== undefined))
  }
  for (const l of launches) {
    if (l.endBasis === 'run-dir') assumptions.push(`instance ${l.instanceId}: assumed it ended at the run's last known time (${l.endedAt})`)
    if (l.endBasis === 'estimate') assumptions.push(`instance ${l.instanceId}: end unknown, assumed it ran the estimated ${((Date.parse(l.endedAt!) - Date.parse(l.startedAt)) / 3_600_000).toFixed(2)} h`)
    if (l.endBasis === 'unknown') assumptions.push(`instance ${l.instanceId}: end unknown and no estimate: not priced`)
  }

  const sum = (o?: Outcome) => launches.filter((l) => !o || l.outcome === o).reduce((s, l) => s + (l.usd ?? 0), 0)
  const count = (o: Outcome) => launches.filter((l) => l.outcome === o).length
  const succeeded = count('succeeded')
  const totalUsd = sum()
  return {
    period: options.period,
    since: since.toISOString(),
    until: now.toISOString(),
    running,
    hourlyBurnUsd,
    dailyBurnUsd: hourlyBurnUsd * 24,
    launches,
    totals: {
      runs: launches.length,
      succeeded,
      failed: count('failed'),
      rolledBack: count('rolled_back'),
      running: count('running'),
      unknown: count('unknown'),
      totalUsd,
      succeededUsd: sum('succeeded'),
      rolledBackUsd: sum('rolled_back'),
      wasteUsd: sum('failed') + sum('rolled_back'),
      costPerSuccessfulRunUsd: succeeded > 0 ? totalUsd / succeeded : null,
      unpricedRuns: launches.filter((l) => l.usd === null).length,
    },
    assumptions,
    launchRecordsPath: read.path,
    ...(vastError ? {vastError} : {}),
  }
}

async function priceLaunch(record: LaunchRecord, instance: Instance | undefined, runsRoot: string, now: Date, vastUnknown: boolean): Promise<LaunchCost> {
  const start = Date.parse(record.started_at!)
  const run = record.run_id ? await readRunTimes(join(runsRoot, record.run_id)) : undefined
  const alive = instance !== undefined && ['running', 'loading', 'created'].includes(instance.status ?? '') && instance.intendedStatus !== 'stopped'

  let end: number | undefined
  let endBasis: EndBasis
  if (record.ended_at) [end, endBasis] = [Date.parse(record.ended_at), 'record']
  else if (alive) [end, endBasis] = [now.getTime(), 'running']
  else if (run && (run.endedAt || run.lastActivityMs > 0)) [end, endBasis] = [run.endedAt ? Date.parse(run.endedAt) : run.lastActivityMs, 'run-dir']
  else if (record.estimate?.hours !== undefined) [end, endBasis] = [Math.min(now.getTime(), start + record.estimate.hours * 3_600_000), 'estimate']
  else endBasis = 'unknown'

  const hours = end === undefined ? null : Math.max(0, (end - start) / 3_600_000)
  const usd = hours === null || record.dph === undefined ? null : hours * record.dph

  let outcome: Outcome = 'unknown'
  let outcomeBasis = vastUnknown ? 'no run directory, no status in the launch record, Vast not reachable' : 'no run directory here and no status in the launch record'
  const recordStatus = record.status?.toLowerCase()
  if (recordStatus && ROLLED_BACK.has(recordStatus)) [outcome, outcomeBasis] = ['rolled_back', `launch record: ${record.status}`]
  else if (run && RUN_SUCCESS.has(run.status)) [outcome, outcomeBasis] = ['succeeded', `run metadata: ${run.status}`]
  else if (run && RUN_FAILURE.has(run.status)) [outcome, outcomeBasis] = ['failed', `run metadata: ${run.status}`]
  else if (recordStatus && RUN_SUCCESS.has(recordStatus)) [outcome, outcomeBasis] = ['succeeded', `launch record: ${record.status}`]
  else if (recordStatus && RUN_FAILURE.has(recordStatus)) [outcome, outcomeBasis] = ['failed', `launch record: ${record.status}`]
  else if (alive) [outcome, outcomeBasis] = ['running', `instance ${instance!.status}`]
  else if (run && RUN_ACTIVE.has(run.status) && !vastUnknown) [outcome, outcomeBasis] = ['failed', `run metadata still says ${run.status} but the instance is ${instance?.status ?? 'gone'}`]

  return {
    instanceId: record.instance_id,
    ...(record.run_id ? {runId: record.run_id} : {}),
    ...(record.config ? {config: record.config} : {}),
    ...(record.gpu ? {gpu: record.gpu} : {}),
    ...(record.dph !== undefined ? {dph: record.dph} : {}),
    startedAt: record.started_at!,
    ...(end !== undefined ? {endedAt: new Date(end).toISOString()} : {}),
    endBasis,
    hours,
    usd,
    ...(record.estimate?.usd !== undefined ? {estimateUsd: record.estimate.usd} : {}),
    outcome,
    outcomeBasis,
    instanceStatus: instance?.status ?? null,
  }
}

const money = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `$${v.toFixed(2)}`)

export function renderCost(r: CostResult): string {
  const L: string[] = []
  L.push(`Running instances: ${r.running.length}${r.vastError ? ' (Vast not reachable: unknown)' : ''}`)
  if (r.running.length > 0) {
    const rows = [['ID', 'Label', 'GPU', '$/h', '$/day', 'Uptime', 'Run'], ...r.running.map((i) => [String(i.id), i.label ?? '-', i.gpu ?? '-', i.dph.toFixed(4), i.dailyBurnUsd.toFixed(2), i.uptimeHours === null ? '-' : `${i.uptimeHours.toFixed(1)} h`, i.runId ?? '-'])]
    L.push(alignTable(rows).map((l) => '  ' + l).join('\n'))
  }
  L.push(`Burn rate: $${r.hourlyBurnUsd.toFixed(4)}/h = ${money(r.dailyBurnUsd)}/day`, '')
  L.push(`Last ${r.period} (${r.since.slice(0, 16).replace('T', ' ')} to ${r.until.slice(0, 16).replace('T', ' ')} UTC):`)
  const t = r.totals
  L.push(`  runs launched:          ${t.runs} (${t.succeeded} succeeded, ${t.failed} failed, ${t.rolledBack ? `${t.rolledBack} rolled back, ` : ''}${t.running} running, ${t.unknown} unknown)`)
  L.push(`  total cost:             ${money(t.totalUsd)}${t.unpricedRuns ? ` (+ ${t.unpricedRuns} run(s) not priced)` : ''}`)
  L.push(`  cost per successful run: ${t.costPerSuccessfulRunUsd === null ? '- (no successful run)' : money(t.costPerSuccessfulRunUsd)}`)
  L.push(`  failed runs (waste):    ${money(t.wasteUsd)}${t.rolledBack ? ` (of which rolled back: ${money(t.rolledBackUsd)})` : ''}`)
  if (r.launches.length > 0) {
    L.push('')
    const rows = [['Instance', 'Run', 'GPU', 'Started', 'Hours', 'Cost', 'Estimate', 'Outcome', 'End'], ...r.launches.map((l) => [String(l.instanceId), l.runId ?? '-', l.gpu ?? '-', l.startedAt.slice(0, 16).replace('T', ' '), l.hours === null ? '-' : l.hours.toFixed(2), money(l.usd), money(l.estimateUsd), l.outcome === 'rolled_back' ? 'rolled back' : l.outcome, l.endBasis])]
    L.push(alignTable(rows).map((l) => '  ' + l).join('\n'))
  }
  if (r.assumptions.length > 0) {
    L.push('', 'Assumptions:')
    for (const a of r.assumptions) L.push(`  - ${a}`)
  }
  return L.join('\n')
}

export function alignTable(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)))
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd())
}
