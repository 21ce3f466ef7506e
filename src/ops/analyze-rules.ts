/**
 * Recommendations for `ups analyze`: the upstream analyze_run rules (operator final loss,
 * diffusion loss, TTC gain, high gradient norms, conservation gap, boundary violations) plus the
 * runbook's (lower LR on NaN, gradient clipping on large norms, train longer when still
 * improving, smaller batch on OOM) and MON-001's cost band.
 */
import type {ChampionComparison, EvaluationAnalysis} from './analyze-eval.js'
import type {Rating, StageAnalysis} from './analyze-metrics.js'
import type {LogClassification} from './log-classify.js'

export interface Recommendation {
  /** Stable id of the rule, for machines and tests. */
  rule: string
  severity: 'critical' | 'warning' | 'info'
  stage?: string
  message: string
}

export interface RuleInputs {
  stages: StageAnalysis[]
  evaluation: EvaluationAnalysis
  config?: Record<string, unknown>
  /** The run's own logs, classified (OOM and friends). */
  logs?: LogClassification
  hardware: Record<string, {mean: number}>
  cost?: {vsEstimatePct?: number; rating?: Rating}
}

const fmt = (v: number) => (Math.abs(v) >= 0.01 && Math.abs(v) < 1e4 ? Number(v.toPrecision(3)).toString() : v.toExponential(2))

function get(config: Record<string, unknown> | undefined, path: string): unknown {
  let cur: unknown = config
  for (const part of path.split('.')) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined
  return cur
}

function stageLr(config: Record<string, unknown> | undefined, stage: string, s: StageAnalysis): number | undefined {
  const key = stage === 'diffusion_residual' ? 'diff_residual' : stage
  const v = get(config, `stages.${key}.optimizer.lr`) ?? get(config, 'optimizer.lr')
  return typeof v === 'number' ? v : s.lr?.initial
}

export function recommend(input: RuleInputs): Recommendation[] {
  const out: Recommendation[] = []
  const clip = get(input.config, 'training.grad_clip')
  const clipText = typeof clip === 'number' ? `training.grad_clip is ${clip}: lower it` : 'set training.grad_clip (e.g. 1.0)'

  for (const s of input.stages) {
    const nonFinite = (s.loss?.nonFinite ?? 0) + (s.valLoss?.nonFinite ?? 0) + (s.gradNorm?.nonFinite ?? 0)
    if (nonFinite > 0) {
      const lr = stageLr(input.config, s.stage, s)
      const at = s.loss?.firstNonFiniteStep !== undefined ? ` (first at step ${s.loss.firstNonFiniteStep})` : ''
      out.push({
        rule: 'nan-lower-lr',
        severity: 'critical',
        stage: s.stage,
        message: `${nonFinite} NaN/Inf value(s) in ${s.stage}${at}: lower the learning rate${lr !== undefined ? ` (stages.${s.stage}.optimizer.lr ${fmt(lr)} -> ${fmt(lr / 2)})` : ''} and ${clipText}.`,
      })
    }
    const limit = s.gradNorm?.kind === 'diffusion' ? 2.0 : 1.0
    if (s.gradNorm && Number.isFinite(s.gradNorm.max) && s.gradNorm.max > limit) {
      out.push({
        rule: 'grad-clip',
        severity: s.gradNorm.max > 10 ? 'critical' : 'warning',
        stage: s.stage,
        message: `Large gradient norms in ${s.stage} (max ${fmt(s.gradNorm.max)}, MON-001 ${s.gradNorm.kind} critical above ${limit.toFixed(1)}): ${clipText}.`,
      })
    }
    if (s.gradNorm && Number.isFinite(s.gradNorm.final) && s.gradNorm.final < (s.gradNorm.kind === 'operator' ? 0.001 : 0.01)) {
      out.push({rule: 'vanishing-grad', severity: 'warning', stage: s.stage, message: `Final gradient norm in ${s.stage} is ${fmt(s.gradNorm.final)}: training has stalled; raise the LR or stop earlier.`})
    }
    const curve = s.valLoss ?? s.loss
    // After a NaN the advice is the LR, not more epochs.
    if (curve && curve.stillImproving && nonFinite === 0) {
      const epochs = s.epochs?.configured ?? s.epochs?.recorded
      out.push({
        rule: 'train-longer',
        severity: 'info',
        stage: s.stage,
        message: `${s.stage} ${s.valLoss ? 'validation ' : ''}loss was still falling at the end: train longer${epochs ? ` (stages.${s.stage}.epochs ${epochs} -> ${Math.ceil(epochs * 1.5)})` : ''}.`,
      })
    }
    if (s.loss && s.loss.count > 1 && s.loss.verdict === 'poor' && s.loss.nonFinite === 0) {
      out.push({rule: 'poor-convergence', severity: 'warning', stage: s.stage, message: `${s.stage} loss fell only ${s.loss.reductionPct === null ? '-' : s.loss.reductionPct.toFixed(1) + '%'}: check the learning rate and data normalisation.`})
    }
    if (s.loss && s.valLoss && s.valLoss.count >= 6 && !s.valLoss.stillImproving && s.loss.stillImproving && s.valLoss.final > s.valLoss.min * 1.1) {
      out.push({rule: 'overfitting', severity: 'warning', stage: s.stage, message: `${s.stage} validation loss rose ${(((s.valLoss.final - s.valLoss.min) / s.valLoss.min) * 100).toFixed(0)}% above its minimum while the training loss kept falling: overfitting; use early stopping (stages.${s.stage}.patience) or more weight decay.`})
    }
    if ((s.stage === 'operator') && s.loss && Number.isFinite(s.loss.final)) {
      if (s.loss.final > 0.001) out.push({rule: 'operator-loss-high', severity: 'info', stage: s.stage, message: `Operator final loss ${fmt(s.loss.final)} > 0.001: consider more epochs or a lower LR for better convergence.`})
      else if (s.loss.final < 0.0001) out.push({rule: 'operator-baseline', severity: 'info', stage: s.stage, message: `Operator final loss ${fmt(s.loss.final)}: excellent convergence, a good baseline.`})
    }
    if ((s.stage === 'diff_residual' || s.stage === 'diffusion_residual') && s.loss && Number.isFinite(s.loss.final) && s.loss.final > 0.01) {
      out.push({rule: 'diffusion-loss-high', severity: s.loss.final > 0.05 ? 'warning' : 'info', stage: s.stage, message: `Diffusion final loss ${fmt(s.loss.final)} (MON-001: < 0.01 healthy, > 0.05 critical): try a lower LR or more epochs.`})
    }
  }

  if (input.logs && input.logs.cause === 'oom') {
    out.push({rule: 'oom-smaller-batch', severity: 'critical', message: `The run ran out of memory: ${input.logs.action}`})
  } else if (input.logs && input.logs.cause === 'shape_mismatch') {
    out.push({rule: 'mismatch-validate', severity: 'critical', message: `The run failed on a shape mismatch: ${input.logs.action}`})
  }

  const ev = input.evaluation
  if (ev.ttcImprovementPct !== undefined && ev.ttcImprovementPct < 10) {
    out.push({rule: 'ttc-low', severity: 'info', message: `TTC improves nRMSE by only ${ev.ttcImprovementPct.toFixed(1)}%: tune ttc.candidates / ttc.beam_width.`})
  }
  const key = ev.comparisons.some((x) => x.metric === 'nrmse') ? 'nrmse' : ev.comparisons[0]?.metric
  for (const c of ev.comparisons.filter((x) => x.metric === key && !x.better)) {
    out.push({rule: 'worse-than-baseline', severity: 'warning', message: `${c.metric} ${fmt(c.value)} does not beat the ${c.baseline} baseline (${fmt(c.baselineValue)}) in ${c.source}.`})
  }
  const all = ev.results.flatMap((r) => [r.metrics, ...Object.values(r.baselines)])
  const gap = all.map((m) => m.conservation_gap).find((v) => v !== undefined)
  if (gap !== undefined && gap > 1.0) out.push({rule: 'conservation-gap', severity: 'warning', message: `Conservation gap ${fmt(gap)} > 1.0: enable physics guards or a residual corrector.`})
  const bc = all.map((m) => m.bc_violation).find((v) => v !== undefined)
  if (bc !== undefined && bc > 0.5) out.push({rule: 'bc-violation', severity: 'warning', message: `Boundary-condition violation ${fmt(bc)} > 0.5: tighten the boundary penalties or curriculum.`})
  if (ev.champion && !ev.champion.beatsChampion) out.push(championNote(ev.champion))

  const util = Object.entries(input.hardware).find(([k]) => /gpu.*util|gpu\/?util|\.gpu$/i.test(k))
  if (util && util[1].mean < 50) out.push({rule: 'gpu-underused', severity: 'warning', message: `Mean GPU utilisation ${util[1].mean.toFixed(0)}% (< 50%): the input pipeline is the bottleneck; use the latent cache or a larger batch.`})
  if (input.cost?.rating === 'critical' || input.cost?.rating === 'warning') {
    out.push({rule: 'cost-over-estimate', severity: input.cost.rating, message: `Cost is ${input.cost.vsEstimatePct?.toFixed(0)}% of the estimate (MON-001: > 120% warning, > 150% critical): check for stalls and refresh the estimate (ups dry-run --estimate-only).`})
  }
  const order = {critical: 0, warning: 1, info: 2}
  return out.sort((a, b) => order[a.severity] - order[b.severity])
}

function championNote(c: ChampionComparison): Recommendation {
  return {rule: 'behind-champion', severity: 'info', message: `${c.metric} ${fmt(c.value)} trails the leaderboard champion ${c.champion.run_id} (${fmt(c.champion.value)}).`}
}
