/** Markdown report and terminal summary for `ups analyze` (pure). */
import {relative} from 'node:path'

import type {AnalyzeResult} from './analyze.js'
import {GRAD_NORM_RANGES, type Rating, type Verdict} from './analyze-metrics.js'

export const num = (v: number | null | undefined): string => {
  if (v === null || v === undefined) return '-'
  if (!Number.isFinite(v)) return 'NaN'
  if (v === 0) return '0'
  const a = Math.abs(v)
  return a >= 1e-3 && a < 1e5 ? Number(v.toPrecision(4)).toString() : v.toExponential(3)
}
const pct = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(1)}%`)
const usd = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `$${v.toFixed(2)}`)

const VERDICT: Record<Verdict, string> = {excellent: 'excellent', good: 'good', moderate: 'moderate', poor: 'poor'}
const RATING: Record<Rating, string> = {healthy: 'Healthy', warning: 'Warning', critical: 'Critical'}

export function formatDuration(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return '-'
  const h = Math.floor(sec / 3600)
  const m = Math.floor((sec % 3600) / 60)
  const s = Math.round(sec % 60)
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`
}

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`)]
}

export function renderAnalysisMarkdown(r: AnalyzeResult, options: {plotDir: string}): string {
  const h = r.header
  const L: string[] = [`# Run analysis: ${r.runId}`, '']
  L.push(
    ...table(['', ''], [
      ['Run ID', `\`${h.runId}\``],
      ...(h.name && h.name !== h.runId ? [['Name', h.name]] : []),
      ['Config', h.config ?? '-'],
      ...(h.configHash ? [['Config hash', `\`${h.configHash}\``]] : []),
      ['State', h.state],
      ['Created', h.created ?? '-'],
      ['Started', h.started ?? '-'],
      ['Ended', h.ended ?? '-'],
      ['Duration', `${formatDuration(h.durationSec)} (${h.durationBasis})`],
      ['Source', r.source === 'wandb' ? `W&B ${h.url ?? ''}`.trim() : 'local run directory'],
      ['Cost', r.cost.usd === null ? '-' : `${usd(r.cost.usd)}${r.cost.estimateUsd !== undefined ? ` of ${usd(r.cost.estimateUsd)} estimated` : ''}`],
      ['History rows', String(h.historyRows)],
    ]),
    '',
  )

  L.push('## Training loss', '')
  if (r.stages.some((s) => s.loss)) {
    L.push(
      ...table(
        ['Stage', 'Initial', 'Final', 'Min', 'Reduction', 'Convergence', 'Logged', 'NaN/Inf', 'Still improving'],
        r.stages.filter((s) => s.loss).map((s) => {
          const l = s.loss!
          return [s.stage, num(l.initial), num(l.final), num(l.min), pct(l.reductionPct), VERDICT[l.verdict], String(l.count), String(l.nonFinite), l.stillImproving ? 'yes' : 'no']
        }),
      ),
      '',
      'Convergence: excellent >= 90 % loss reduction, good >= 50 %, moderate >= 20 %, else poor.',
      '',
    )
    const val = r.stages.filter((s) => s.valLoss)
    if (val.length > 0) {
      L.push('Validation loss:', '', ...table(['Stage', 'Initial', 'Final', 'Min', 'Reduction', 'Still improving'], val.map((s) => [s.stage, num(s.valLoss!.initial), num(s.valLoss!.final), num(s.valLoss!.min), pct(s.valLoss!.reductionPct), s.valLoss!.stillImproving ? 'yes' : 'no'])), '')
    }
  } else L.push('*No loss logged.*', '')

  L.push('## Learning rate', '')
  const lrs = r.stages.filter((s) => s.lr)
  L.push(...(lrs.length ? [...table(['Stage', 'Initial', 'Final', 'Min', 'Max'], lrs.map((s) => [s.stage, num(s.lr!.initial), num(s.lr!.final), num(s.lr!.min), num(s.lr!.max)]))] : ['*No learning rate logged.*']), '')

  L.push('## Epochs and epoch time', '')
  const ep = r.stages.filter((s) => s.epochs || s.epochTimeSec)
  L.push(
    ...(ep.length
      ? table(['Stage', 'Epochs (logged / configured)', 'Mean epoch', 'Max epoch', 'Total', 'Samples/s'], ep.map((s) => [
          s.stage,
          `${s.epochs?.recorded ?? '-'} / ${s.epochs?.configured ?? '-'}`,
          s.epochTimeSec ? `${num(s.epochTimeSec.mean)} s` : '-',
          s.epochTimeSec ? `${num(s.epochTimeSec.max)} s` : '-',
          s.epochTimeSec ? formatDuration(s.epochTimeSec.total) : '-',
          s.samplesPerSec ? num(s.samplesPerSec.mean) : '-',
        ]))
      : ['*No epoch data logged.*']),
    '',
  )

  L.push('## Gradient norms', '')
  const gs = r.stages.filter((s) => s.gradNorm)
  if (gs.length) {
    L.push(...table(['Stage', 'Range', 'Initial', 'Final', 'Max', 'Mean', 'NaN/Inf', 'Final rating', 'Max rating'], gs.map((s) => {
      const g = s.gradNorm!
      return [s.stage, g.kind, num(g.initial), num(g.final), num(g.max), num(g.mean), String(g.nonFinite), RATING[g.rating], RATING[g.maxRating]]
    })), '')
    const o = GRAD_NORM_RANGES.operator
    const d = GRAD_NORM_RANGES.diffusion
    L.push(`MON-001: operator ${o.healthy.join('-')} healthy, ${o.warning.join('-')} warning, > ${o.warning[1]} or < ${o.criticalBelow} critical; diffusion ${d.healthy.join('-')} / ${d.warning.join('-')} / > ${d.warning[1]}.`, '')
  } else L.push('*No gradient norms logged.*', '')

  L.push('## Evaluation', '')
  const ev = r.evaluation
  if (ev.results.length === 0) L.push('*No evaluation results found.*', '')
  for (const res of ev.results) {
    L.push(`### ${res.source}`, '')
    const names = Object.keys(res.metrics)
    if (names.length) L.push(...table(['Metric', 'Value'], names.map((m) => [m, num(res.metrics[m])])), '')
  }
  if (ev.comparisons.length) {
    L.push('### Versus baselines', '', ...table(['Source', 'Metric', 'Run', 'Baseline', 'Baseline value', 'Improvement', 'Better'], ev.comparisons.map((c) => [c.source, c.metric, num(c.value), c.baseline, num(c.baselineValue), pct(c.improvementPct), c.better ? 'yes' : 'no'])), '')
  }
  if (ev.ttcImprovementPct !== undefined) L.push(`TTC improvement on nRMSE: ${pct(ev.ttcImprovementPct)}.`, '')
  L.push('### Versus the leaderboard champion', '')
  if (ev.champion) {
    const c = ev.champion
    L.push(`${c.metric}: this run ${num(c.value)}, champion \`${c.champion.run_id}\`${c.champion.label ? ` (${c.champion.label})` : ''} ${num(c.champion.value)}: ${pct(c.improvementPct)} ${c.beatsChampion ? '(this run is at least as good: a new champion)' : '(behind the champion)'}; ${c.rows} leaderboard row(s) in ${c.leaderboard}.`, '')
  } else L.push(`*No comparison: ${ev.championNote ?? 'no leaderboard'}.*`, '')
  if (ev.unreadable.length) L.push(`Unreadable results files: ${ev.unreadable.map((u) => `${u.path} (${u.reason})`).join(', ')}.`, '')

  L.push('## Hardware', '')
  const hw = r.hardware
  const hwRows = Object.entries(hw.metrics).map(([k, s]) => [k, num(s.mean), num(s.min), num(s.max)])
  if (hwRows.length) L.push(...table(['Metric', 'Mean', 'Min', 'Max'], hwRows), '')
  for (const [k, v] of Object.entries(hw.throughput)) L.push(`- ${k} throughput: ${num(v)} samples/s`)
  for (const [k, v] of Object.entries(hw.notes)) L.push(`- ${k}: ${v}`)
  if (!hwRows.length && !Object.keys(hw.throughput).length && !Object.keys(hw.notes).length) L.push('*No hardware metrics logged.*')
  L.push('')

  L.push('## Cost', '')
  const c = r.cost
  if (c.usd === null) L.push(`*Not known: ${c.basis}.*`, '')
  else {
    L.push(
      ...table(['', ''], [
        ['Instance', c.instanceId !== undefined ? String(c.instanceId) : '-'],
        ['GPU', c.gpu ?? '-'],
        ['$/h', c.dph !== undefined ? c.dph.toFixed(4) : '-'],
        ['Hours', num(c.hours)],
        ['Cost', usd(c.usd)],
        ['Estimate', c.estimateUsd !== undefined ? `${usd(c.estimateUsd)}${c.estimateHours !== undefined ? ` (${num(c.estimateHours)} h)` : ''}` : '-'],
        ['Cost vs estimate', c.vsEstimatePct !== undefined ? `${c.vsEstimatePct.toFixed(0)}% (${RATING[c.rating!]}; MON-001: 80-120 % healthy, 120-150 % warning, > 150 % critical)` : '-'],
        ['Basis', c.basis],
      ]),
      '',
    )
  }

  if (r.failure) {
    L.push('## Failure in the run\'s logs', '', `**${r.failure.title}.** ${r.failure.action}`, '')
    for (const e of r.failure.evidence) L.push(`- line ${e.line}: \`${e.text.replace(/`/g, "'")}\``)
    L.push('')
  }

  L.push('## Recommendations', '')
  if (r.recommendations.length === 0) L.push('No issues found: training looks healthy.')
  for (const rec of r.recommendations) L.push(`- **${rec.severity}**${rec.stage ? ` (${rec.stage})` : ''}: ${rec.message}`)
  L.push('')

  if (r.plots.length) {
    L.push('## Plots', '')
    for (const p of r.plots) L.push(`![${p.title}](${relative(options.plotDir, p.png)})`, '', `SVG: [${relative(options.plotDir, p.svg)}](${relative(options.plotDir, p.svg)})`, '')
  }
  if (r.warnings.length) {
    L.push('## Warnings', '')
    for (const w of r.warnings) L.push(`- ${w}`)
    L.push('')
  }
  L.push(`*Generated ${r.generatedAt} by ups analyze.*`, '')
  return L.join('\n')
}

/** What the command prints: where the report is and the gist. */
export function renderAnalyzeSummary(r: AnalyzeResult): string {
  const L = [`Report: ${r.reportPath}`, `Run ${r.runId}: ${r.header.state}, ${formatDuration(r.header.durationSec)}${r.cost.usd !== null ? `, ${usd(r.cost.usd)}` : ''}`]
  for (const s of r.stages) {
    const parts = [s.stage.padEnd(20)]
    if (s.loss) parts.push(`loss ${num(s.loss.initial)} -> ${num(s.loss.final)} (${pct(s.loss.reductionPct)}, ${s.loss.verdict})`)
    if (s.gradNorm) parts.push(`grad norm ${num(s.gradNorm.final)} ${s.gradNorm.rating}`)
    L.push('  ' + parts.join('  '))
  }
  if (r.evaluation.champion) L.push(`Champion: ${r.evaluation.champion.beatsChampion ? 'this run beats' : 'behind'} ${r.evaluation.champion.champion.run_id} on ${r.evaluation.champion.metric}`)
  L.push(`${r.recommendations.length} recommendation(s)${r.recommendations.length ? ':' : ''}`)
  for (const rec of r.recommendations) L.push(`  [${rec.severity}] ${rec.message}`)
  if (r.plots.length) L.push(`Plots: ${r.plots.map((p) => p.name).join(', ')} (.svg, .png)`)
  for (const w of r.warnings) L.push(`warning: ${w}`)
  return L.join('\n')
}
