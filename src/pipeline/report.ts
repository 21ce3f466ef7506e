/**
 * The pipeline's closing artefacts: the short analysis report (reports/summary.md; the full
 * `ups analyze` lives elsewhere), the leaderboard row of a run, and the final line.
 */
import type {LeaderboardRow} from './leaderboard.js'
import type {PipelineMetadata, PipelineStep, StepRecord} from './metadata.js'
import {PIPELINE_STEPS} from './metadata.js'

export const SUCCESS_LINE = 'Training pipeline completed successfully'
export const failureLine = (step: string, reason: string) => `Training pipeline failed: ${step}: ${reason}`

/** The run's leaderboard row: deterministic in the run's metadata (no clock), so reruns rewrite it identically. */
export function leaderboardRowOf(meta: PipelineMetadata): LeaderboardRow {
  const gate = (g?: {passed: boolean}) => (g ? (g.passed ? 'passed' : 'failed') : 'skipped')
  const row: LeaderboardRow = {
    run_id: meta.run_id,
    label: meta.gates.full?.passed ? 'champion' : 'candidate',
    created_at: meta.created_at,
    config_hash: meta.config_hash,
    small_gate: gate(meta.gates.small),
    full_gate: gate(meta.gates.full),
    tags: Object.entries(meta.tags ?? {}).map(([k, v]) => `${k}=${v}`).join(';'),
    notes: meta.notes ?? '',
  }
  for (const [kind, rec] of [['small', meta.last_small_eval], ['full', meta.last_full_eval]] as const) {
    for (const [k, v] of Object.entries(rec?.metrics ?? {})) row[`${kind}.${k}`] = String(v)
  }
  return row
}

function metricsTable(metrics: Record<string, number>): string[] {
  const keys = Object.keys(metrics).sort()
  if (keys.length === 0) return ['(no metrics)']
  return ['| metric | value |', '|---|---|', ...keys.map((k) => `| ${k} | ${Number(metrics[k].toPrecision(6))} |`)]
}

export function renderSummaryReport(meta: PipelineMetadata, extra: {estimateLine?: string; leaderboardCsv: string; leaderboardHtml: string | null; runDir: string}): string {
  const lines = [
    `# Run ${meta.run_id}`,
    '',
    `- train config: \`${meta.options.trainConfig}\` (config hash \`${meta.config_hash}\`)`,
    `- created: ${meta.created_at}; trained: ${meta.trained ? meta.trained_at : 'no'}`,
    ...(extra.estimateLine ? [`- dry-run estimate: ${extra.estimateLine}`] : []),
    ...(Object.keys(meta.tags ?? {}).length ? [`- tags: ${Object.entries(meta.tags).map(([k, v]) => `${k}=${v}`).join(', ')}`] : []),
    ...(meta.notes ? [`- notes: ${meta.notes}`] : []),
    '',
    '## Steps',
    '',
    '| step | status | detail |',
    '|---|---|---|',
    ...PIPELINE_STEPS.filter((s) => s !== 'report').map((s) => stepRow(s, meta.steps[s])),
    '',
  ]
  for (const kind of ['small', 'full'] as const) {
    const rec = kind === 'small' ? meta.last_small_eval : meta.last_full_eval
    lines.push(`## ${kind === 'small' ? 'Small (proxy)' : 'Full'} evaluation`, '')
    if (!rec) lines.push('Not run.', '')
    else lines.push(`Split \`${rec.split}\`, config \`${rec.config}\`, results \`${rec.results_path}\`.`, '', ...metricsTable(rec.metrics), '')
    const gate = meta.gates[kind]
    if (gate) lines.push(`Gate: **${gate.passed ? 'passed' : 'failed'}**: ${gate.reason}`, '')
  }
  lines.push(
    '## Next',
    '',
    `- leaderboard: \`${extra.leaderboardCsv}\`${extra.leaderboardHtml ? ` and \`${extra.leaderboardHtml}\`` : ''}`,
    `- full analysis: \`ups analyze ${meta.run_id}\``,
    `- re-evaluate: \`ups resume ${meta.run_id} --redo-full-eval\``,
    '',
  )
  return lines.join('\n')
}

function stepRow(step: PipelineStep, rec?: StepRecord): string {
  const detail = (rec?.detail ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')
  return `| ${step} | ${rec?.status ?? 'not run'} | ${detail} |`
}
