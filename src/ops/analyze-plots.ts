/** The plots of `ups analyze`: loss (and val loss) per stage, grad norm, LR; SVG + PNG each. */
import {GRAD_NORM_RANGES, seriesOf, stageKey, type HistoryRow, type StageAnalysis} from './analyze-metrics.js'
import {lineChartSpec, writeChart, type Band, type Series} from './plots.js'

export interface PlotFiles {
  name: string
  title: string
  svg: string
  png: string
}

/** Writes `<base>_loss_<stage>`, `<base>_grad_norm`, `<base>_lr` (.svg + .png) for what was logged. */
export async function writeAnalysisPlots(base: string, rows: HistoryRow[], stages: StageAnalysis[]): Promise<PlotFiles[]> {
  const out: PlotFiles[] = []
  const finite = (s: Series) => s.points.some((p) => Number.isFinite(p.y))
  const add = async (name: string, title: string, series: Series[], opts: {yTitle: string; logY?: boolean; bands?: Band[]}) => {
    const shown = series.filter(finite)
    if (shown.length === 0) return
    const paths = await writeChart(`${base}_${name}`, lineChartSpec(shown, {title, yTitle: opts.yTitle, logY: opts.logY, bands: opts.bands}))
    out.push({name, title, ...paths})
  }
  for (const s of stages) {
    const series: Series[] = [
      {name: 'loss', points: seriesOf(rows, stageKey(rows, s.stage, 'loss'))},
      {name: 'val_loss', points: seriesOf(rows, stageKey(rows, s.stage, 'val_loss'))},
    ]
    // Losses spanning decades read better on a log axis (only when every value is positive).
    const values = series.flatMap((x) => x.points.map((p) => p.y)).filter(Number.isFinite)
    const logY = values.length > 0 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 20
    await add(`loss_${s.stage}`, `${s.stage} loss`, series, {yTitle: 'loss', logY})
  }
  const gradStages = stages.filter((s) => s.gradNorm)
  const kinds = new Set(gradStages.map((s) => s.gradNorm!.kind))
  // The healthy band is drawn when every stage shares one MON-001 range.
  const bands: Band[] = kinds.size === 1 ? [{from: GRAD_NORM_RANGES[[...kinds][0]].healthy[0], to: GRAD_NORM_RANGES[[...kinds][0]].healthy[1], label: 'healthy'}] : []
  await add(
    'grad_norm',
    'gradient norm',
    gradStages.map((s) => ({name: s.stage, points: seriesOf(rows, stageKey(rows, s.stage, 'grad_norm'))})),
    {yTitle: 'grad norm', logY: true, bands},
  )
  await add(
    'lr',
    'learning rate',
    stages.filter((s) => s.lr).map((s) => ({name: s.stage, points: seriesOf(rows, stageKey(rows, s.stage, 'lr'))})),
    {yTitle: 'lr', logY: true},
  )
  return out
}
