/**
 * `ups watchdog`: polls an instance until its run ends, and STOPS it (never destroys: the disk
 * is kept for the post-mortem) after saving its log to `incidents/`, when
 *   - a failure marker is in the log ("Training pipeline failed", a traceback, NaN);
 *   - cost so far exceeds budget-factor x the launch estimate;
 *   - GPU utilisation stays under the critical threshold (50%) for idle-minutes after training started;
 *   - runtime exceeds max-hours (the runbook's ">8 hours at 100%" emergency).
 * Clock and sleep are parameters, so tests run a whole watch instantly.
 */
import {UserError} from '../util/errors.js'
import {type LaunchRecord, type Provider, appendLaunchUpdate, readLaunchRecords} from '../vast/index.js'
import {DEFAULT_THRESHOLDS} from './health.js'
import {parseLog} from './log-parse.js'
import {runtimeHours} from './monitor.js'
import {incidentDir, saveInstanceLogs, writeIncidentNote} from './preserve.js'

export interface WatchdogOptions {
  instanceId: number
  intervalMs?: number
  maxHours?: number
  budgetFactor?: number
  idleMinutes?: number
  /** GPU utilisation (%) under which the GPU counts as idle. */
  idleBelowPct?: number
  /** One check, then return (cron). */
  once?: boolean
  /** Stop polling after this many checks (tests). */
  maxPolls?: number
}

export interface WatchdogDeps {
  provider: Provider
  launchesFile: string
  now: () => Date
  sleep: (ms: number) => Promise<void>
  /** incidents/ goes under this folder. */
  cwd: string
  env: NodeJS.ProcessEnv
  /** Each line the watchdog wants said (stdout and its log). */
  onEvent: (message: string) => void
}

export type WatchdogTrigger = 'failure' | 'cost' | 'idle' | 'max_hours'

export interface WatchdogResult {
  instanceId: number
  runId: string | null
  polls: number
  /** stopped: the watchdog stopped it; ended: the run ended by itself (or the instance is gone); ok: --once found nothing wrong; limit: maxPolls reached. */
  outcome: 'stopped' | 'ended' | 'ok' | 'limit'
  trigger: WatchdogTrigger | null
  reason: string
  incidentDir: string | null
  logPath: string | null
  stopError: string | null
}

const ACTIVE = ['created', 'loading', 'running', 'scheduling']

export async function runWatchdog(options: WatchdogOptions, deps: WatchdogDeps): Promise<WatchdogResult> {
  const id = options.instanceId
  const records = await readLaunchRecords(deps.launchesFile)
  const record: LaunchRecord | undefined = records.launches.filter((r) => r.instance_id === id).pop()
  const factor = options.budgetFactor ?? 1.5
  const idleMs = (options.idleMinutes ?? 10) * 60_000
  const idleBelow = options.idleBelowPct ?? DEFAULT_THRESHOLDS.gpuUtilCriticalBelow
  const estimateUsd = record ? record.estimate.hours * record.dph_total : null
  const base = {instanceId: id, runId: record?.run_id ?? null, incidentDir: null, logPath: null, stopError: null}
  deps.onEvent(
    `watchdog: watching instance ${id}${record ? ` (run ${record.run_id})` : ' (no launch record: no cost check)'}; ` +
      `stops on failure markers${estimateUsd ? `, cost > ${factor} x $${estimateUsd.toFixed(2)}` : ''}, GPU < ${idleBelow}% for ${idleMs / 60_000} min` +
      `${options.maxHours !== undefined ? `, runtime > ${options.maxHours} h` : ''}`,
  )
  let idleSince: number | null = null
  for (let polls = 1; ; polls++) {
    const now = deps.now()
    let status: string
    let inst
    try {
      inst = await deps.provider.show(id)
      status = inst.status ?? 'scheduling'
    } catch (error) {
      if (error instanceof UserError && error.code === 'VAST_NOT_FOUND') {
        deps.onEvent(`watchdog: instance ${id} no longer exists; nothing to watch`)
        return {...base, polls, outcome: 'ended', trigger: null, reason: 'instance gone'}
      }
      throw error
    }
    if (!ACTIVE.includes(status)) {
      deps.onEvent(`watchdog: instance ${id} is ${status}; the run has ended`)
      return {...base, polls, outcome: 'ended', trigger: null, reason: `instance ${status}`}
    }
    const summary = status === 'running' ? parseLog(await deps.provider.logs(id, {tail: 1000}).catch(() => [] as string[])) : parseLog([])
    const hours = runtimeHours(inst, record, now)
    const cost = hours !== null && inst.dphTotal !== null ? hours * inst.dphTotal : null

    let trigger: WatchdogTrigger | null = null
    let reason = ''
    if (summary.failureLines.length || summary.tracebacks.length || summary.nanLines.length) {
      trigger = 'failure'
      const what = summary.failureLines.at(-1) ?? summary.tracebacks.at(-1)?.error ?? `NaN: ${summary.nanLines.at(-1)}`
      reason = `failure marker in the log: ${what.trim()}`
    } else if (cost !== null && estimateUsd && cost > factor * estimateUsd) {
      trigger = 'cost'
      reason = `cost so far $${cost.toFixed(2)} exceeds ${factor} x the estimate $${estimateUsd.toFixed(2)} ($${(factor * estimateUsd).toFixed(2)})`
    } else if (options.maxHours !== undefined && hours !== null && hours > options.maxHours) {
      trigger = 'max_hours'
      reason = `runtime ${hours.toFixed(2)} h exceeds --max-hours ${options.maxHours}`
    } else {
      const idle = status === 'running' && summary.trainingStarted && inst.gpuUtil !== null && inst.gpuUtil < idleBelow
      idleSince = idle ? (idleSince ?? now.getTime()) : null
      if (idleSince !== null && now.getTime() - idleSince >= idleMs) {
        trigger = 'idle'
        reason = `GPU utilisation ${inst.gpuUtil}% has been under ${idleBelow}% for ${((now.getTime() - idleSince) / 60_000).toFixed(0)} min`
      }
    }
    if (trigger) return stopInstance(id, trigger, reason, polls, base, deps)
    deps.onEvent(`watchdog: ${now.toISOString()} ${status}, GPU ${inst.gpuUtil ?? '-'}%, ${cost === null ? '' : `$${cost.toFixed(2)} so far, `}ok`)
    if (options.once) return {...base, polls, outcome: 'ok', trigger: null, reason: 'nothing wrong'}
    if (options.maxPolls !== undefined && polls >= options.maxPolls) return {...base, polls, outcome: 'limit', trigger: null, reason: `stopped watching after ${polls} checks`}
    await deps.sleep(options.intervalMs ?? 60_000)
  }
}

async function stopInstance(
  id: number,
  trigger: WatchdogTrigger,
  reason: string,
  polls: number,
  base: Pick<WatchdogResult, 'instanceId' | 'runId'>,
  deps: WatchdogDeps,
): Promise<WatchdogResult> {
  const now = deps.now()
  const dir = incidentDir(deps.cwd, now, id)
  deps.onEvent(`watchdog: STOPPING instance ${id}: ${reason}`)
  const saved = await saveInstanceLogs(deps.provider, id, {dir, env: deps.env})
  deps.onEvent(saved.logPath ? `watchdog: saved ${saved.lines} log lines to ${saved.logPath}` : `watchdog: could not save the log: ${saved.error}`)
  let stopError: string | null = null
  try {
    await deps.provider.stop(id)
    deps.onEvent(`watchdog: stopped instance ${id} (not destroyed: its disk is kept; \`ups instances destroy ${id}\` when done)`)
  } catch (error) {
    stopError = (error as Error).message
    deps.onEvent(`watchdog: FAILED to stop instance ${id}: ${stopError}`)
  }
  await writeIncidentNote(dir, {what: 'stopped by ups watchdog', instance_id: id, run_id: base.runId, trigger, reason, at: now.toISOString(), logs: saved.logPath, log_error: saved.error ?? null, stop_error: stopError})
  if (base.runId) {
    await appendLaunchUpdate(deps.launchesFile, {instance_id: id, at: now.toISOString(), status: stopError ? 'watchdog_stop_failed' : 'stopped_by_watchdog', status_reason: reason})
  }
  return {...base, polls, outcome: 'stopped', trigger, reason, incidentDir: dir, logPath: saved.logPath, stopError}
}

export function renderWatchdog(r: WatchdogResult): string {
  if (r.outcome === 'stopped') {
    return `Stopped instance ${r.instanceId} (${r.trigger}): ${r.reason}\nLogs: ${r.logPath ?? 'not saved'}${r.stopError ? `\nStop FAILED: ${r.stopError}` : ''}`
  }
  return `Instance ${r.instanceId}: ${r.outcome} after ${r.polls} check(s): ${r.reason}`
}
