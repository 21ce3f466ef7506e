/**
 * `ups run` / `ups resume`: the fast-to-SOTA orchestrator.
 *   validate -> data check -> dry-run estimate -> train -> small eval -> gate -> full eval -> gate
 *   -> leaderboard -> report
 * Every step consults metadata.json first and is skipped when already done, so a killed run
 * resumes where it stopped. Work that produces files is committed before it is recorded, and
 * a rerun adopts committed work instead of redoing it (checkpoints via the train step's resume,
 * evaluations via readEvaluation). One-shot flags (--force-train, --redo-*) first move the old
 * outputs aside and only then clear their record, so repeating them after a crash is harmless.
 */
import {mkdir, readdir, rename, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {loadConfig, resolveArchitecture, trainingConfigHash, type UpsConfig} from '../config/index.js'
import {createRunDir, DEFAULT_RUNS_ROOT, JsonlAppender, newRunId, openRunDir, type RunDir, runDirAt, updateSummary} from '../tracking/rundir.js'
import {withRunDirLock} from '../tracking/rundir-lock.js'
import {wandbSettingsFromConfig, type WandbDeps} from '../tracking/wandb.js'
import {ExitCode, UserError, knownUserError} from '../util/errors.js'
import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import {describeHolder} from '../util/lock.js'
import {evaluateGate} from './gates.js'
import {baselinesOf, readLeaderboard, updateLeaderboard} from './leaderboard.js'
import {publishLeaderboardRow} from './leaderboard-wandb.js'
import {enabledStagesOf} from './stages.js'
import {type EvalRecord, type GateRecord, patchMetadata, PIPELINE_SCHEMA_VERSION, PIPELINE_STEPS, type PipelineMetadata, type PipelineRunOptions, type PipelineStep, readPipelineMetadata, recordStep} from './metadata.js'
import {failureLine, leaderboardRowOf, renderSummaryReport, SUCCESS_LINE} from './report.js'
import type {PipelineSteps} from './steps.js'

export interface PipelineDeps {
  steps: PipelineSteps
  /** Wall clock. */
  now: () => Date
  randomHex: () => string
  cwd: string
  runsRoot?: string
  onProgress?: (line: string) => void
  /** W&B side effects for --leaderboard-wandb; without them nothing is published. */
  wandb?: WandbDeps
}

export interface PipelineResult {
  ok: boolean
  runId: string | null
  runDir: string | null
  failedStep?: string
  reason?: string
  /** The last line printed: success, or `Training pipeline failed: <step>: <reason>`. */
  message: string
  exitCode: 0 | 1
  steps: Partial<Record<PipelineStep, {status: string; detail: string}>>
  gates: {small?: GateRecord; full?: GateRecord}
  leaderboardRow?: Record<string, string>
  reportPath?: string
}

class StepFailure extends Error {
  constructor(readonly step: PipelineStep, readonly reason: string) {
    super(reason)
  }
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim()

export async function runPipeline(options: PipelineRunOptions & {runId?: string}, deps: PipelineDeps): Promise<PipelineResult> {
  return execute(normalize(options, deps.cwd), undefined, deps)
}

/** Continues a run from its metadata; the flags override the stored one-shot options. */
export async function resumePipeline(ref: string, flags: {redoSmallEval?: boolean; redoFullEval?: boolean; forceTrain?: boolean}, deps: PipelineDeps): Promise<PipelineResult> {
  const dir = await openRunDir(ref, resolve(deps.cwd, deps.runsRoot ?? DEFAULT_RUNS_ROOT))
  const meta = await readPipelineMetadata(dir)
  if (!meta.options?.trainConfig) {
    throw new UserError(`${dir.path} was not started by \`ups run\`: its metadata has no pipeline options.`, {code: 'PIPELINE_NOT_A_PIPELINE_RUN', hint: 'Start it with `ups run --train-config CONFIG`.', exitCode: ExitCode.USAGE})
  }
  const o = meta.options
  return execute({...o, runId: dir.id, forceTrain: o.forceTrain || Boolean(flags.forceTrain), redoSmallEval: o.redoSmallEval || Boolean(flags.redoSmallEval), redoFullEval: o.redoFullEval || Boolean(flags.redoFullEval)}, dir, deps)
}

function normalize<T extends PipelineRunOptions>(o: T, cwd: string): T {
  const abs = (p?: string) => (p === undefined ? undefined : resolve(cwd, p))
  return {...o, trainConfig: abs(o.trainConfig)!, smallEvalConfig: abs(o.smallEvalConfig), fullEvalConfig: abs(o.fullEvalConfig), leaderboardCsv: abs(o.leaderboardCsv)!, leaderboardHtml: o.leaderboardHtml ? abs(o.leaderboardHtml)! : null}
}

async function execute(options: PipelineRunOptions & {runId?: string}, existing: RunDir | undefined, deps: PipelineDeps): Promise<PipelineResult> {
  const progress = deps.onProgress ?? (() => {})
  let config: UpsConfig
  try {
    config = await loadConfigFor(options.trainConfig, options.overrides, existing, deps.cwd)
  } catch (error) {
    const reason = oneLine((error as Error).message)
    return {ok: false, runId: null, runDir: null, failedStep: 'validate', reason, message: failureLine('validate', reason), exitCode: 1, steps: {}, gates: {}}
  }
  const hash = trainingConfigHash(config)
  const dir = existing ?? (await openOrCreate(options, config, hash, deps))
  // Before any write: a second `ups resume` of a running run is refused here (RUNDIR_LOCKED).
  return withRunDirLock(dir.path, `ups ${existing ? 'resume' : 'run'} ${dir.id}`, async (lock) => {
    for (const path of lock.removedTemps) progress(`Removed a temp file left by a killed writer: ${path}`)
    return executeLocked(options, config, hash, dir, deps)
  }, {onReclaim: (previous, reason) => progress(`Reclaimed the lock of ${dir.path} from ${describeHolder(previous)}: ${reason}`)})
}

async function executeLocked(options: PipelineRunOptions & {runId?: string}, config: UpsConfig, hash: string, dir: RunDir, deps: PipelineDeps): Promise<PipelineResult> {
  const progress = deps.onProgress ?? (() => {})
  const nowIso = () => deps.now().toISOString()
  const log = new JsonlAppender(join(dir.paths.logs, 'pipeline.jsonl'), 1)
  const say = async (line: string) => {
    progress(line)
    await log.append({time: nowIso(), message: line})
  }
  let meta = await readPipelineMetadata(dir)
  const {forceTrain, redoSmallEval, redoFullEval} = options
  meta = await patchMetadata(dir, {status: 'running', options: {...options, forceTrain, redoSmallEval, redoFullEval}})
  const record = async (step: PipelineStep, status: 'done' | 'skipped', detail: string, extra: Partial<PipelineMetadata> = {}) => {
    meta = await recordStep(dir, step, {status, at: nowIso(), detail}, extra)
    await say(`${status === 'done' ? '✓' : '-'} ${step}: ${detail}`)
  }
  const isDone = (step: PipelineStep) => meta.steps[step]?.status === 'done'
  let current: PipelineStep = 'validate'
  let estimateLine: string | undefined
  try {
    // OP-003: a changed config never reuses checkpoints unless --force-train.
    if (meta.config_hash && meta.config_hash !== hash && !forceTrain && (meta.trained || (await hasFiles(dir.paths.checkpoints)))) {
      current = 'train'
      throw new StepFailure('train', `the config hash is ${hash} but run ${dir.id} was trained with ${meta.config_hash}; refusing to reuse its checkpoints (pass --force-train to train again)`)
    }
    if (forceTrain) meta = await startOver(dir, meta, hash, deps)
    else if (meta.config_hash !== hash) meta = await patchMetadata(dir, {config_hash: hash})
    if (redoSmallEval) meta = await clearEval(dir, 'small', deps)
    if (redoFullEval) meta = await clearEval(dir, 'full', deps)

    current = 'validate'
    if (options.skipValidation) await record('validate', 'skipped', '--skip-validation')
    else if (isDone('validate')) await say('= validate: already done')
    else {
      const v = await deps.steps.validate(options.trainConfig, options.overrides)
      if (!v.valid) throw new StepFailure('validate', `${v.failed.length} check(s) failed: ${v.failed.join('; ')}`)
      await record('validate', 'done', `${v.summary.passed}/${v.summary.total} checks passed`)
    }

    current = 'data_check'
    if (options.skipDataCheck) await record('data_check', 'skipped', '--skip-data-check')
    else if (isDone('data_check')) await say('= data_check: already done')
    else {
      const d = await deps.steps.checkData(config, {quick: true})
      if (!d.ok) throw new StepFailure('data_check', d.files.filter((f) => !f.ok).map((f) => `${f.path}: ${f.problem}`).join('; ') || 'data check failed')
      await record('data_check', 'done', `${d.files.length} file(s) ok${d.generated.length ? `; generated ${d.generated.join(', ')}` : ''}`)
    }

    current = 'dry_run'
    if (options.skipDryRun) await record('dry_run', 'skipped', '--skip-dry-run')
    else if (isDone('dry_run')) estimateLine = meta.steps.dry_run?.detail
    else {
      const passes = (options.skipSmallEval ? 0 : 1) + (options.skipFullEval ? 0 : 1)
      // Estimated where it runs: the step is timed on this machine's backend ('local'), unless --gpu says otherwise.
      const e = await deps.steps.estimate(config, {gpu: options.gpu ?? 'local', evalPasses: passes})
      await writeJsonAtomic(join(dir.path, 'estimate.json'), e)
      estimateLine = e.line
      await record('dry_run', 'done', e.line)
    }

    current = 'train'
    if (options.skipTraining) {
      if (!meta.trained && !(await hasFiles(dir.paths.checkpoints))) throw new StepFailure('train', `--skip-training, but run ${dir.id} has no checkpoints to reuse`)
      await record('train', 'skipped', `--skip-training: reusing ${meta.trained ? `training from ${meta.trained_at}` : 'existing checkpoints'}`)
    } else if (meta.trained) await say(`= train: already trained at ${meta.trained_at}`)
    else {
      const resume = await hasFiles(dir.paths.checkpoints)
      await say(`… train: ${resume ? 'resuming from checkpoints' : 'starting'} (${enabledStagesOf(config).join(', ')})`)
      const t = await deps.steps.train(config, {runDir: dir.path, resume, force: forceTrain && !resume, wandbMode: options.wandbMode})
      if (t.wandb) await writeJsonAtomic(join(dir.path, 'artifacts', 'wandb_run.json'), t.wandb)
      await record('train', 'done', `trained ${t.stages.length ? t.stages.join(', ') : 'every enabled stage'}`, {trained: true, trained_at: nowIso(), training_wandb: t.wandb ?? null, config_hash: hash})
    }

    for (const kind of ['small', 'full'] as const) {
      const evalStep: PipelineStep = `${kind}_eval`
      const gateStep: PipelineStep = `${kind}_gate`
      current = evalStep
      const skip = kind === 'small' ? options.skipSmallEval : options.skipFullEval
      const blocked = kind === 'full' && meta.gates.small && !meta.gates.small.passed
      const key = kind === 'small' ? 'last_small_eval' : 'last_full_eval'
      if (skip || blocked) {
        await record(evalStep, 'skipped', skip ? `--skip-${kind}-eval` : 'the small-eval gate failed')
        await record(gateStep, 'skipped', 'no evaluation')
        continue
      }
      let rec = meta[key]
      if (rec) await say(`= ${evalStep}: reusing cached metrics`)
      else {
        const cfgPath = kind === 'small' ? options.smallEvalConfig : options.fullEvalConfig
        const evalConfig = cfgPath ? (await loadConfig(cfgPath, {overrides: options.overrides, deps: {cwd: deps.cwd}})).config : config
        if (cfgPath) await writeFileAtomic(join(dir.path, 'configs', `${kind}_eval.resolved.json`), JSON.stringify(evalConfig, null, 2) + '\n')
        const split = evalConfig.evaluation?.split ?? 'test'
        const out = join(dir.paths.eval, kind)
        const adopted = await deps.steps.readEvaluation(out)
        const r = adopted ?? (await deps.steps.evaluate(evalConfig, {runDir: dir.path, split, out, kind}))
        rec = {metrics: r.metrics, results_path: r.resultsPath, config: cfgPath ?? options.trainConfig, split} satisfies EvalRecord
        await record(evalStep, 'done', `${adopted ? 'adopted finished results' : 'evaluated'} on ${split}: ${fmtMetrics(r.metrics)}`, {[key]: rec, [`${key}_at`]: nowIso()})
      }
      current = gateStep
      const board = await readLeaderboard(options.leaderboardCsv)
      const g = evaluateGate(rec.metrics, baselinesOf(board, kind, dir.id), {metric: options.improvementMetric, minDelta: kind === 'small' ? options.minSmallDelta : options.minFullDelta, ratios: options.gateRatios})
      const gate: GateRecord = {passed: g.passed, reason: g.reason, baseline: g.baseline?.runId ?? null}
      await record(gateStep, 'done', `${g.passed ? 'passed' : 'failed'}: ${g.reason}`, {gates: {...meta.gates, [kind]: gate}})
    }

    current = 'leaderboard'
    if (!meta.last_small_eval && !meta.last_full_eval) await record('leaderboard', 'skipped', 'no evaluation metrics')
    else {
      const row = leaderboardRowOf(meta)
      await updateLeaderboard(options.leaderboardCsv, options.leaderboardHtml, row, {command: `ups run (${dir.id})`})
      let mirrored = ''
      if (options.leaderboardWandb) {
        const fromConfig = wandbSettingsFromConfig(config)
        const target = {project: options.leaderboardWandbProject ?? fromConfig?.project, entity: options.leaderboardWandbEntity ?? fromConfig?.entity}
        const files = [options.leaderboardCsv, ...(options.leaderboardHtml ? [options.leaderboardHtml] : [])]
        const published = deps.wandb ? await publishLeaderboardRow(row, files, target, deps.wandb) : {detail: 'W&B leaderboard not sent: no W&B client'}
        mirrored = `; ${published.detail}`
      }
      await record('leaderboard', 'done', `${row.label} row for ${dir.id} in ${options.leaderboardCsv}${mirrored}`)
    }

    current = 'report'
    const reportPath = join(dir.paths.reports, 'summary.md')
    await writeFileAtomic(reportPath, renderSummaryReport(meta, {estimateLine, leaderboardCsv: options.leaderboardCsv, leaderboardHtml: options.leaderboardHtml, runDir: dir.path}))
    await updateSummary(dir, summaryValues(meta))
    await record('report', 'done', reportPath)

    const gateFailed = (['small', 'full'] as const).find((k) => meta.gates[k] && !meta.gates[k]!.passed)
    if (gateFailed && options.strictExit) throw new StepFailure(`${gateFailed}_gate`, `--strict-exit: ${meta.gates[gateFailed]!.reason}`)
    meta = await patchMetadata(dir, {status: 'finished', finished_at: nowIso()})
    const note = gateFailed ? ` (the ${gateFailed} gate did not pass: not promoted)` : ''
    await say(`Report: ${reportPath}${note}`)
    await log.close()
    return result(true, dir, meta, SUCCESS_LINE, {reportPath})
  } catch (error) {
    const failure = error instanceof StepFailure ? error : new StepFailure(current, oneLine(knownUserError(error)?.message ?? `unexpected error: ${(error as Error).message ?? String(error)}`))
    meta = await recordStep(dir, failure.step, {status: 'failed', at: nowIso(), detail: failure.reason}, {status: 'failed'}).catch(() => meta)
    await say(`✗ ${failure.step}: ${failure.reason}`).catch(() => {})
    await log.close().catch(() => {})
    return result(false, dir, meta, failureLine(failure.step, failure.reason), {failedStep: failure.step, reason: failure.reason})
  }
}

function result(ok: boolean, dir: RunDir, meta: PipelineMetadata, message: string, extra: Partial<PipelineResult>): PipelineResult {
  const steps = Object.fromEntries(Object.entries(meta.steps).map(([k, v]) => [k, {status: v!.status, detail: v!.detail}]))
  return {ok, runId: dir.id, runDir: dir.path, message, exitCode: ok ? 0 : 1, steps, gates: meta.gates, leaderboardRow: meta.last_small_eval || meta.last_full_eval ? leaderboardRowOf(meta) : undefined, ...extra}
}

function summaryValues(meta: PipelineMetadata): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(meta.last_small_eval?.metrics ?? {})) out[`small_eval/${k}`] = v
  for (const [k, v] of Object.entries(meta.last_full_eval?.metrics ?? {})) out[`full_eval/${k}`] = v
  if (meta.gates.small) out['gate/small'] = meta.gates.small.passed
  if (meta.gates.full) out['gate/full'] = meta.gates.full.passed
  return out
}

const fmtMetrics = (m: Record<string, number>) => Object.entries(m).slice(0, 4).map(([k, v]) => `${k}=${Number(v.toPrecision(4))}`).join(', ') || 'no metrics'

/** The train config; a resumed run whose config file is gone falls back to its resolved copy. */
async function loadConfigFor(path: string, overrides: string[], existing: RunDir | undefined, cwd: string): Promise<UpsConfig> {
  try {
    return (await loadConfig(path, {overrides, deps: {cwd}})).config
  } catch (error) {
    if (!existing || (error as UserError).exitCode !== ExitCode.USAGE) throw error
    return (await loadConfig(existing.paths.config, {deps: {cwd}})).config
  }
}

async function openOrCreate(options: PipelineRunOptions & {runId?: string}, config: UpsConfig, hash: string, deps: PipelineDeps): Promise<RunDir> {
  const root = resolve(deps.cwd, deps.runsRoot ?? DEFAULT_RUNS_ROOT)
  if (options.runId && (await exists(join(root, options.runId, 'metadata.json')))) return runDirAt(join(root, options.runId))
  const runId = options.runId ?? newRunId(deps.now(), deps.randomHex)
  const {include: _include, ...resolved} = config
  const initial: Omit<PipelineMetadata, 'run_id' | 'created_at'> = {
    schema_version: PIPELINE_SCHEMA_VERSION,
    config_hash: hash,
    arch: {...resolveArchitecture(config), stages: enabledStagesOf(config)},
    trained: false, trained_at: null,
    last_small_eval: null, last_small_eval_at: null, last_full_eval: null, last_full_eval_at: null,
    training_wandb: null, steps: {}, gates: {}, options, tags: options.tags, notes: options.notes ?? null,
  }
  return createRunDir(root, runId, {config: resolved, metadata: initial, now: deps.now()})
}

/** --force-train: move checkpoints and evaluations aside first, then forget them. */
async function startOver(dir: RunDir, meta: PipelineMetadata, hash: string, deps: PipelineDeps): Promise<PipelineMetadata> {
  const stamp = deps.now().toISOString().replace(/[:.]/g, '-')
  if (await hasFiles(dir.paths.checkpoints)) await rename(dir.paths.checkpoints, `${dir.paths.checkpoints}.replaced-${stamp}`)
  await mkdir(dir.paths.checkpoints, {recursive: true})
  for (const kind of ['small', 'full']) await moveAside(join(dir.paths.eval, kind), stamp)
  const keep = Object.fromEntries(Object.entries(meta.steps).filter(([k]) => !PIPELINE_STEPS.includes(k as PipelineStep)))
  return patchMetadata(dir, {
    config_hash: hash, trained: false, trained_at: null, training_wandb: null,
    last_small_eval: null, last_small_eval_at: null, last_full_eval: null, last_full_eval_at: null,
    steps: keep, gates: {}, options: {...meta.options, forceTrain: false},
  })
}

async function clearEval(dir: RunDir, kind: 'small' | 'full', deps: PipelineDeps): Promise<PipelineMetadata> {
  await moveAside(join(dir.paths.eval, kind), deps.now().toISOString().replace(/[:.]/g, '-'))
  const meta = await readPipelineMetadata(dir)
  const steps = {...meta.steps}
  delete steps[`${kind}_eval`]
  delete steps[`${kind}_gate`]
  const gates = {...meta.gates}
  delete gates[kind]
  const flag = kind === 'small' ? 'redoSmallEval' : 'redoFullEval'
  return patchMetadata(dir, {[`last_${kind}_eval`]: null, [`last_${kind}_eval_at`]: null, steps, gates, options: {...meta.options, [flag]: false}})
}

async function moveAside(path: string, stamp: string): Promise<void> {
  if (await exists(path)) await rename(path, `${path}.replaced-${stamp}`)
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

async function hasFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).some((n) => !n.startsWith('.'))
  } catch {
    return false
  }
}
