/**
 * `ups recover`: the runbook's PROC-002 (emergency instance recreation):
 *   1. plan the replacement launch first (config, budget, offer): if it cannot launch, nothing
 *      is destroyed;
 *   2. preserve the old instance's log and try to copy its checkpoints off;
 *   3. destroy the old instance (confirmed: --yes, or a yes on a terminal);
 *   4. launch a new one from the launch record (same config, source commit, image, disk and offer
 *      constraints) running `ups resume RUN_ID` instead of `ups run`, recorded as recovered_from
 *      the old launch, which gets replaced_by.
 */
import {ExitCode, UserError} from '../util/errors.js'
import {
  type LaunchDeps,
  type LaunchOptions,
  type LaunchRecord,
  type LaunchResult,
  MIN_CUDA,
  appendLaunchUpdate,
  launch,
  readLaunchRecords,
  requireLaunch,
} from '../vast/index.js'
import {type SavedCheckpoints, incidentDir, saveCheckpoints, saveInstanceLogs, writeIncidentNote} from './preserve.js'

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
  const planned = await launch({...launchOptions, dryRun: true}, deps)
  const steps = [
    `save the log of instance ${id} to incidents/<time>_${id}/instance.log`,
    `try to copy /workspace/ups/artifacts/runs/${record.run_id}/checkpoints off instance ${id} (vastai copy)`,
    `destroy instance ${id}`,
    `launch offer ${planned.offer.id} (${planned.offer.numGpus}x ${planned.offer.gpuName}, $${planned.offer.dphTotal.toFixed(4)}/h) from ${old.source}, config ${record.config_path}, running \`ups resume ${record.run_id}\``,
    `record the new launch as recovered from ${id}`,
  ]
  if (options.dryRun) return {dryRun: true, old, steps, saved: null, notSaved: [], destroyed: false, launch: planned}

  await confirm(id, options)
  // 2. Preserve.
  const dir = incidentDir(deps.cwd, deps.now(), id)
  const logs = await saveInstanceLogs(deps.provider, id, {dir, env: deps.env})
  const checkpoints = await saveCheckpoints(deps.provider, id, record.run_id, dir)
  const notSaved = [
    ...(logs.logPath ? [] : [`the log (${logs.error})`]),
    ...(checkpoints.localPath ? [] : [`checkpoints (${checkpoints.error}); the new run resumes from W&B checkpoints if there are any`]),
  ]
  // 3. Destroy.
  try {
    await deps.provider.destroy(id)
  } catch (error) {
    if (!(error instanceof UserError && error.code === 'VAST_NOT_FOUND')) throw error
  }
  // 4. Launch the replacement, linked to the old launch.
  let result: LaunchResult
  try {
    result = await launch(launchOptions, deps)
  } finally {
    await writeIncidentNote(dir, {what: 'ups recover (PROC-002)', instance_id: id, run_id: record.run_id, at: deps.now().toISOString(), logs: logs.logPath, checkpoints: checkpoints.localPath, not_saved: notSaved})
  }
  if (result.instanceId !== null) {
    await appendLaunchUpdate(deps.launchesFile, {instance_id: id, at: deps.now().toISOString(), status: 'recovered', replaced_by: result.instanceId})
  }
  return {dryRun: false, old, steps, saved: {incidentDir: dir, logPath: logs.logPath, logError: logs.error ?? null, checkpoints}, notSaved, destroyed: true, launch: result}
}

export function renderRecover(r: RecoverResult): string {
  const lines = [r.dryRun ? `Plan to recover instance ${r.old.instanceId} (run ${r.old.runId}); nothing done (dry run):` : `Recovered instance ${r.old.instanceId} (run ${r.old.runId}):`]
  r.steps.forEach((s, i) => lines.push(`  ${i + 1}. ${s}`))
  if (r.saved) {
    lines.push('', `Log:          ${r.saved.logPath ?? `not saved (${r.saved.logError})`}`, `Checkpoints:  ${r.saved.checkpoints.localPath ?? 'not saved'}`)
    for (const n of r.notSaved) lines.push(`Not saved: ${n}`)
  }
  if (!r.dryRun) lines.push('', `New instance: ${r.launch.instanceId} (resuming run ${r.launch.runId})`, `Next: ups monitor ${r.launch.instanceId}`)
  return lines.join('\n')
}
