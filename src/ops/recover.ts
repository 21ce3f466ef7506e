/**
 * `ups recover`: the runbook's PROC-002 (emergency instance recreation):
 *   1. plan the replacement launch first (config, budget, offer): if it cannot launch, nothing
 *      is destroyed;
 *   2. preserve the old instance's log and try to copy its checkpoints off;
 *   3. destroy the old instance (confirmed: --yes, or a yes on a terminal);
 *   4. launch a new one from the launch record (same config, source commit, image, disk and offer
 *      constraints) running `ups resume RUN_ID` instead of `ups run`, recorded as recovered_from
 *      the old launch, which gets replaced_by;
 *   5. when checkpoints were saved: once the new instance runs, copy them into its run directory
 *      and then the `.restore-complete` marker, which its onstart waits for (bounded) before
 *      `ups resume`. A failed restore is reported, never fatal: the run resumes without it.
 */
import {join} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {
  type LaunchDeps,
  type LaunchOptions,
  type LaunchRecord,
  type LaunchResult,
  MIN_CUDA,
  RESTORE_MARKER,
  RESTORE_WAIT_S,
  TRAINING_STARTED,
  appendLaunchUpdate,
  destroyOptions,
  destroyWithRetry,
  launch,
  readLaunchRecords,
  recordDestroyed,
  requireLaunch,
  waitForLogLine,
  waitForStatus,
} from '../vast/index.js'
import {
  REMOTE_APP_DIR,
  type RestoredCheckpoints,
  type SavedCheckpoints,
  incidentDir,
  listFiles,
  restoreCheckpoints,
  saveCheckpoints,
  saveInstanceLogs,
  writeIncidentNote,
} from './preserve.js'

export interface RecoverOptions {
  instanceId: number
  yes: boolean
  dryRun: boolean
  isTTY: boolean
  ask: (question: string) => Promise<boolean>
  /** Passed to the new launch. */
  wait?: boolean
  waitTimeoutMs?: number
}

export interface RecoverResult {
  dryRun: boolean
  old: {instanceId: number; runId: string; configPath: string; source: string}
  steps: string[]
  saved: {incidentDir: string; logPath: string | null; logError: string | null; checkpoints: SavedCheckpoints} | null
  /** What could not be preserved, in words. */
  notSaved: string[]
  destroyed: boolean
  launch: LaunchResult
  /** What was put back on the new instance; null when there was nothing to restore (see notSaved). */
  restored: RestoredCheckpoints | null
}

/** The new launch's options, from the old launch record. */
export function recoveryLaunchOptions(record: LaunchRecord): LaunchOptions {
  const {offerId: _o, ...constraints} = record.filters as Record<string, unknown>
  const filters =
    Object.keys(constraints).length > 0 ? constraints : {gpu: record.offer.gpu_name, numGpus: record.offer.num_gpus, minCuda: MIN_CUDA}
  return {
    configPath: record.config_abs_path,
    source: `git:${record.source.git_url}#${record.source.ref}`,
    image: record.image,
    diskGb: record.disk_gb,
    autoShutdown: record.auto_shutdown,
    runArgs: record.run_args,
    data: record.data,
    label: record.label ?? undefined,
    filters,
    resume: {runId: record.run_id, from: {instance_id: record.instance_id, run_id: record.run_id}},
  }
}

async function confirm(id: number, options: RecoverOptions): Promise<void> {
  if (options.yes) return
  if (!options.isTTY) {
    throw new UserError(`Refusing to destroy instance ${id} without confirmation (not a terminal).`, {
      code: 'RECOVER_CONFIRM_REQUIRED',
      hint: `See the plan with \`ups recover ${id} --dry-run\`; to go ahead: ups recover ${id} --yes`,
      exitCode: ExitCode.USAGE,
    })
  }
  if (!(await options.ask(`Destroy instance ${id} (after saving its log) and launch a replacement? [y/N] `))) {
    throw new UserError(`Not recovering instance ${id}: not confirmed.`, {code: 'RECOVER_NOT_CONFIRMED', exitCode: ExitCode.USAGE})
  }
}

export async function recoverInstance(options: RecoverOptions, deps: LaunchDeps): Promise<RecoverResult> {
  const id = options.instanceId
  const record = requireLaunch(await readLaunchRecords(deps.launchesFile), {instanceId: id})
  const launchOptions = {...recoveryLaunchOptions(record), wait: options.wait, waitTimeoutMs: options.waitTimeoutMs}
  const old = {instanceId: id, runId: record.run_id, configPath: record.config_path, source: launchOptions.source as string}
  // 1. Plan the replacement before touching the old instance.
  const canRestore = Boolean(deps.provider.copyFrom && deps.provider.copyTo)
  const withRestore = (restoreWait: boolean) => ({...launchOptions, resume: {...launchOptions.resume!, restoreWait}})
  // The plan shows the onstart as it will be when checkpoints are saved.
  const planned = await launch({...withRestore(canRestore), dryRun: true}, deps)
  const runDir = `${REMOTE_APP_DIR}/artifacts/runs/${record.run_id}`
  const steps = [
    `save the log of instance ${id} to incidents/<time>_${id}/instance.log`,
    `try to copy ${runDir}/checkpoints off instance ${id} (vastai copy)`,
    `destroy instance ${id}`,
    `launch offer ${planned.offer.id} (${planned.offer.numGpus}x ${planned.offer.gpuName}, $${planned.offer.dphTotal.toFixed(4)}/h) from ${old.source}, config ${record.config_path}, running \`ups resume ${record.run_id}\`${canRestore ? ` (after waiting up to ${RESTORE_WAIT_S / 60} min for restored checkpoints, when there are any)` : ''}`,
    canRestore
      ? `when it is running, copy the saved checkpoints to ${runDir}/checkpoints on it, then ${runDir}/.restore-complete (vastai copy)`
      : `no checkpoint restore: the ${deps.provider.name} provider cannot copy files; the run resumes from W&B checkpoints if there are any`,
    `record the new launch as recovered from ${id}`,
  ]
  if (options.dryRun) return {dryRun: true, old, steps, saved: null, notSaved: [], destroyed: false, launch: planned, restored: null}

  await confirm(id, options)
  // 2. Preserve.
  const dir = incidentDir(deps.cwd, deps.now(), id)
  const logs = await saveInstanceLogs(deps.provider, id, {dir, env: deps.env})
  const checkpoints = await saveCheckpoints(deps.provider, id, record.run_id, dir)
  const notSaved = [
    ...(logs.logPath ? [] : [`the log (${logs.error})`]),
    ...(checkpoints.localPath ? [] : [`checkpoints (${checkpoints.error}); the new run resumes from W&B checkpoints if there are any`]),
  ]
  // 3. Destroy, retried like a launch rollback: a transient failure here must not leave the old
  // instance billing beside its replacement. No replacement while the old one may still run.
  const gone = await destroyWithRetry(deps.provider, id, destroyOptions(deps))
  if (!gone.destroyed) {
    throw new UserError(`Could not destroy instance ${id} after ${gone.attempts} tries (${gone.error}); no replacement was launched.`, {
      code: 'RECOVER_DESTROY_FAILED',
      hint: `Its log and checkpoints were saved to ${dir}. Destroy it by hand (ups instances destroy ${id} --yes), then run ups recover ${id} again.`,
      exitCode: ExitCode.EXTERNAL,
      details: {instanceId: id, attempts: gone.attempts},
    })
  }
  // Written before the replacement launches, so cost sees the old one ended even if that fails.
  await recordDestroyed(deps.launchesFile, id, {at: deps.now(), by: 'ups recover'})
  // 4. Launch the replacement, linked to the old launch. With checkpoints to restore its onstart
  // waits for them, so --wait ("Training started") can only be checked after the restore.
  const saved = checkpoints.localPath ? (await listFiles(checkpoints.localPath).catch(() => ({files: []}))).files.length : 0
  const restoring = canRestore && saved > 0
  if (checkpoints.localPath && saved === 0) notSaved.push('checkpoints (the checkpoint folder on the instance was empty)')
  let result: LaunchResult
  let restored: RestoredCheckpoints | null = null
  try {
    result = await launch({...withRestore(restoring), wait: restoring ? false : options.wait}, deps)
    // 5. Restore.
    if (restoring && result.instanceId !== null) restored = await restoreOnto(result.instanceId, checkpoints.localPath!, record.run_id, dir, options, deps)
  } finally {
    await writeIncidentNote(dir, {what: 'ups recover (PROC-002)', instance_id: id, run_id: record.run_id, at: deps.now().toISOString(), logs: logs.logPath, checkpoints: checkpoints.localPath, not_saved: notSaved, restore: restoreRecord(restored) ?? null})
  }
  const restore = restoreRecord(restored)
  if (result.instanceId !== null) {
    await appendLaunchUpdate(deps.launchesFile, {instance_id: id, at: deps.now().toISOString(), status: 'recovered', replaced_by: result.instanceId, ...(restore ? {restore} : {})})
    if (restore) await appendLaunchUpdate(deps.launchesFile, {instance_id: result.instanceId, at: deps.now().toISOString(), restore})
  }
  const out: RecoverResult = {dryRun: false, old, steps, saved: {incidentDir: dir, logPath: logs.logPath, logError: logs.error ?? null, checkpoints}, notSaved, destroyed: true, launch: result, restored}
  if (restoring && options.wait && result.instanceId !== null) result.verified = await verifyStarted(result.instanceId, out, options, deps)
  return out
}

function restoreRecord(r: RestoredCheckpoints | null) {
  return r ? {restored: r.restored, files: r.files, bytes: r.bytes, remote_path: r.remotePath, ...(r.error ? {error: r.error} : {})} : undefined
}

const clockOf = (deps: LaunchDeps) => () => deps.now().getTime()

/** Waits for the new instance to run, then copies the checkpoints and the marker onto it. */
async function restoreOnto(newId: number, localDir: string, runId: string, dir: string, options: RecoverOptions, deps: LaunchDeps): Promise<RestoredCheckpoints> {
  deps.onStage?.('verify', `waiting for instance ${newId} to run, to restore the checkpoints onto it`)
  try {
    await waitForStatus(deps.provider, newId, 'running', {timeoutMs: options.waitTimeoutMs ?? 15 * 60_000, sleep: deps.sleep, now: clockOf(deps)})
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    const {files, bytes} = await listFiles(localDir)
    const runDir = `${REMOTE_APP_DIR}/artifacts/runs/${runId}`
    return {remotePath: `${runDir}/checkpoints`, markerPath: `${runDir}/${RESTORE_MARKER}`, restored: false, files: files.length, bytes, error: `copy failed: ${error.message}`}
  }
  const r = await restoreCheckpoints(deps.provider, newId, {localDir, runId, stageDir: join(dir, 'restore'), runFilesDir: join(dir, 'run-files')})
  deps.onStage?.('verify', r.restored ? `restored ${r.files} checkpoint files (${r.bytes} bytes) onto instance ${newId}` : `checkpoints NOT restored: ${r.error}`)
  return r
}

/** --wait after a restore: "Training started" in the new log; no rollback (the recovery itself worked). */
async function verifyStarted(newId: number, r: RecoverResult, options: RecoverOptions, deps: LaunchDeps): Promise<{status: string; line: string}> {
  try {
    const line = await waitForLogLine(deps.provider, newId, TRAINING_STARTED, {timeoutMs: options.waitTimeoutMs ?? 15 * 60_000, sleep: deps.sleep, now: clockOf(deps), intervalMs: 15_000})
    return {status: 'running', line}
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    throw new UserError(`Recovered instance ${r.old.instanceId} as ${newId}, but training did not start on it: ${error.message}`, {
      code: 'RECOVER_NOT_STARTED',
      hint: `Read its log: ups instances logs ${newId}. It was not rolled back; the saved log and checkpoints are in ${r.saved?.incidentDir}.`,
      exitCode: ExitCode.CHECK_FAILED,
      cause: error,
      details: {newInstanceId: newId, restored: r.restored},
    })
  }
}

export function renderRecover(r: RecoverResult): string {
  const lines = [r.dryRun ? `Plan to recover instance ${r.old.instanceId} (run ${r.old.runId}); nothing done (dry run):` : `Recovered instance ${r.old.instanceId} (run ${r.old.runId}):`]
  r.steps.forEach((s, i) => lines.push(`  ${i + 1}. ${s}`))
  if (r.saved) {
    lines.push('', `Log:          ${r.saved.logPath ?? `not saved (${r.saved.logError})`}`, `Checkpoints:  ${r.saved.checkpoints.localPath ?? 'not saved'}`)
    if (r.restored) {
      lines.push(r.restored.restored ? `Restored:     ${r.restored.files} files, ${r.restored.bytes} bytes to ${r.launch.instanceId}:${r.restored.remotePath}` : `Not restored: ${r.restored.error}`)
    }
    for (const n of r.notSaved) lines.push(`Not saved: ${n}`)
  }
  if (!r.dryRun) lines.push('', `New instance: ${r.launch.instanceId} (resuming run ${r.launch.runId})`, `Next: ups monitor ${r.launch.instanceId}`)
  return lines.join('\n')
}
