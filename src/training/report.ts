/**
 * Evaluation outputs, all written atomically into one folder:
 *   results.json            every metric, hashes, split, sample count, time, baselines, ratios
 *   report.md               the headline table, the full metric tables and the plots
 *   plots/<name>.svg|.png   rollout vs truth, nRMSE over rollout steps, error spectrum
 * And the flat `eval/<metric>` summary the run summary and W&B receive.
 */
import {join} from 'node:path'

import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import type {EvalResult, PairMetrics} from './evaluate.js'
import {type FieldMetrics, flattenMetrics} from './metrics.js'
import {renderEvalPlots} from './plots.js'

export const RESULTS_FORMAT_VERSION = 1

export interface ReportContext {
  /** When the evaluation finished (from the caller's clock). */
  finishedAt: Date
  checkpointsDir: string
  configPath?: string
}

export interface WrittenReport {
  outDir: string
  resultsPath: string
  reportPath: string
  /** Every file written, plots included. */
  files: string[]
  plots: Array<{name: string; svg: string; png: string}>
}

/** What results.json holds: the result without the plot data, plus context and the flat summary. */
export function resultsJson(r: EvalResult, ctx: ReportContext): Record<string, unknown> {
  const {examples: _examples, ...rest} = r
  return {
    format: 'ups-eval-results',
    version: RESULTS_FORMAT_VERSION,
    finished_at: ctx.finishedAt.toISOString(),
    checkpoints_dir: ctx.checkpointsDir,
    ...(ctx.configPath ? {config_path: ctx.configPath} : {}),
    ...rest,
    summary: evalSummary(r),
  }
}

/** Flat `eval/...` numbers: what goes into the run summary and W&B. */
export function evalSummary(r: EvalResult): Record<string, number> {
  const out: Record<string, number> = {}
  const pair = (prefix: string, m: PairMetrics) => {
    Object.assign(out, flattenMetrics(`${prefix}/one_step`, m.oneStep), flattenMetrics(`${prefix}/rollout`, m.rollout.overall))
    const last = m.rollout.nrmsePerStep.at(-1)
    if (last !== undefined) out[`${prefix}/rollout/final_step_nrmse`] = last
  }
  pair('eval', r.model)
  pair('eval/latent', r.latent)
  Object.assign(out, flattenMetrics('eval/reconstruction', r.reconstruction))
  pair('eval/persistence', r.baselines.persistence)
  if (!('skipped' in r.baselines.linear)) pair('eval/linear', r.baselines.linear)
  const ratios: Array<[string, number | null | undefined]> = [
    ['eval/improvement_vs_persistence/one_step', r.ratios.persistence.oneStep],
    ['eval/improvement_vs_persistence/rollout', r.ratios.persistence.rollout],
    ['eval/improvement_vs_linear/one_step', r.ratios.linear?.oneStep],
    ['eval/improvement_vs_linear/rollout', r.ratios.linear?.rollout],
  ]
  for (const [k, v] of ratios) if (typeof v === 'number') out[k] = v
  out['eval/samples'] = r.samples
  out['eval/rollout_steps'] = r.rolloutSteps
  out['eval/seconds'] = r.timing.totalSeconds
  // JSON has no NaN/Infinity; leave such values out rather than write null-as-number.
  for (const [k, v] of Object.entries(out)) if (!Number.isFinite(v)) delete out[k]
  return out
}

/** Writes results.json, report.md and the plots into outDir. */
export async function writeEvalReport(r: EvalResult, outDir: string, ctx: ReportContext): Promise<WrittenReport> {
  const plots = await renderEvalPlots(r)
  const files: string[] = []
  const plotFiles: WrittenReport['plots'] = []
  for (const p of plots) {
    const svg = join(outDir, 'plots', `${p.name}.svg`)
    const png = join(outDir, 'plots', `${p.name}.png`)
    await writeFileAtomic(svg, p.svg)
    await writeFileAtomic(png, p.png)
    files.push(svg, png)
    plotFiles.push({name: p.name, svg, png})
  }
  const resultsPath = join(outDir, 'results.json')
  await writeJsonAtomic(resultsPath, resultsJson(r, ctx))
  const reportPath = join(outDir, 'report.md')
  await writeFileAtomic(reportPath, renderReportMarkdown(r, ctx, plots.map((p) => ({name: p.name, title: p.title}))))
  files.push(resultsPath, reportPath)
  return {outDir, resultsPath, reportPath, files, plots: plotFiles}
}

export function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return '-'
  if (!Number.isFinite(v)) return String(v)
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(digits - 1)
  return Number(v.toPrecision(digits)).toString()
}

const ratioText = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${fmt(v, 3)}x`)

/** The headline rows: model vs persistence vs linear, one-step and rollout nRMSE, ratios. */
export function headlineRows(r: EvalResult): string[][] {
  const lin = 'skipped' in r.baselines.linear ? null : r.baselines.linear
  return [
    ['', 'one-step nRMSE', `rollout nRMSE (${r.rolloutSteps} steps)`, 'final-step nRMSE', 'model better by (one-step / rollout)'],
    ['model', fmt(r.model.oneStep.nrmse), fmt(r.model.rollout.overall.nrmse), fmt(r.model.rollout.nrmsePerStep.at(-1)), ''],
    ['persistence', fmt(r.baselines.persistence.oneStep.nrmse), fmt(r.baselines.persistence.rollout.overall.nrmse), fmt(r.baselines.persistence.rollout.nrmsePerStep.at(-1)), `${ratioText(r.ratios.persistence.oneStep)} / ${ratioText(r.ratios.persistence.rollout)}`],
    lin
      ? ['linear', fmt(lin.oneStep.nrmse), fmt(lin.rollout.overall.nrmse), fmt(lin.rollout.nrmsePerStep.at(-1)), `${ratioText(r.ratios.linear?.oneStep)} / ${ratioText(r.ratios.linear?.rollout)}`]
      : ['linear', 'skipped', '', '', ('skipped' in r.baselines.linear ? r.baselines.linear.skipped : '')],
  ]
}

/** What `ups eval` prints: the headline table as aligned text, and where the report is. */
export function renderEval(r: {evaluation: EvalResult; reportPath: string; resultsPath: string; outDir: string; runDir: string | null; wandb: {mirrored: boolean; reason?: string}}): string {
  const e = r.evaluation
  const rows = headlineRows(e)
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)))
  const text = rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd())
  const lines = [
    `Evaluated ${e.samples} ${e.task} trajectories (${e.split} split, ${e.frames} frames, grid ${e.grid.join('x')}), corrector ${e.corrector.used ? `on (tau ${e.tau}, ${e.corrector.noise} noise)` : 'off'}, in ${fmt(e.timing.totalSeconds, 3)} s:`,
    ...text.map((l) => `  ${l}`),
    `  autoencoder reconstruction nRMSE ${fmt(e.reconstruction.nrmse)}; latent one-step nRMSE ${fmt(e.latent.oneStep.nrmse)}`,
    `Report: ${r.reportPath}`,
    `Results: ${r.resultsPath} (plots in ${join(r.outDir, 'plots')})`,
  ]
  if (r.runDir) lines.push(`Run summary updated: ${r.runDir}/summary.json${r.wandb.mirrored ? ' (and W&B)' : ''}`)
  return lines.join('\n')
}

function markdownTable(rows: string[][]): string {
  const [head, ...body] = rows
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((row) => `| ${row.join(' | ')} |`)].join('\n')
}

function metricRow(name: string, m: FieldMetrics): string[] {
  return [name, fmt(m.rmse), fmt(m.nrmse), fmt(m.mae), fmt(m.maxError), fmt(m.crmse), fmt(m.brmse), fmt(m.frmse.low), fmt(m.frmse.mid), fmt(m.frmse.high)]
}

export function renderReportMarkdown(r: EvalResult, ctx: ReportContext, plots: Array<{name: string; title: string}>): string {
  const head = ['', 'RMSE', 'nRMSE', 'MAE', 'max error', 'cRMSE', 'bRMSE', 'fRMSE low', 'fRMSE mid', 'fRMSE high']
  const lin = 'skipped' in r.baselines.linear ? null : r.baselines.linear
  const physical = [
    head,
    metricRow('model, one step', r.model.oneStep),
    metricRow('model, rollout', r.model.rollout.overall),
    metricRow('persistence, one step', r.baselines.persistence.oneStep),
    metricRow('persistence, rollout', r.baselines.persistence.rollout.overall),
    ...(lin ? [metricRow('linear, one step', lin.oneStep), metricRow('linear, rollout', lin.rollout.overall)] : []),
    metricRow('autoencoder reconstruction', r.reconstruction),
  ]
  const latent = [head, metricRow('one step', r.latent.oneStep), metricRow('rollout', r.latent.rollout.overall)]
  const steps = [
    ['step', 'model', 'persistence', ...(lin ? ['linear'] : [])],
    ...r.model.rollout.nrmsePerStep.map((v, k) => [String(k + 1), fmt(v), fmt(r.baselines.persistence.rollout.nrmsePerStep[k]), ...(lin ? [fmt(lin.rollout.nrmsePerStep[k])] : [])]),
  ]
  const lines = [
    `# Evaluation: ${r.task}, ${r.split} split`,
    '',
    `${r.samples} trajectories of ${r.frames} frames on a ${r.grid.join(' x ')} grid (${r.channels} channel${r.channels === 1 ? '' : 's'}), dt ${fmt(r.dt)}, ` +
      `rollout ${r.rolloutSteps} steps from the first frame, corrector ${r.corrector.used ? `${r.corrector.kind} (tau ${r.tau}, sampling from ${r.corrector.noise === 'sample' ? 'a seeded noise draw' : 'the noise mean'})` : 'off'}. ` +
      `Finished ${ctx.finishedAt.toISOString()} in ${fmt(r.timing.totalSeconds, 3)} s.`,
    '',
    `Config hash \`${r.configHash}\`; checkpoints \`${ctx.checkpointsDir}\` (${Object.entries(r.checkpointHashes).map(([k, v]) => `${k} \`${v.slice(0, 12)}\``).join(', ') || 'no hashes'}).`,
    '',
    '## Model vs baselines',
    '',
    markdownTable(headlineRows(r)),
    '',
    'nRMSE = ||pred - true|| / ||true|| per trajectory and channel, averaged (PDEBench). "Better by" is baseline nRMSE / model nRMSE.',
    '',
    '## Physical-space metrics',
    '',
    markdownTable(physical),
    '',
    '## Latent-space metrics (against the encoded truth)',
    '',
    markdownTable(latent),
    '',
    '## nRMSE per rollout step',
    '',
    markdownTable(steps),
    '',
    '## Plots',
    '',
    ...plots.flatMap((p) => [`### ${p.title}`, '', `![${p.title}](plots/${p.name}.png)`, '', `[SVG](plots/${p.name}.svg)`, '']),
    'All numbers are in `results.json`.',
    '',
  ]
  return lines.join('\n')
}
