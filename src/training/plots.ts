/**
 * Evaluation plots without a browser: a Vega-Lite spec is compiled to Vega, rendered headless by
 * a vega View (renderer 'none') to SVG, and rasterised to PNG by resvg. vega, vega-lite and resvg
 * load only when a plot is drawn.
 */
import {DEFAULT_BAND_EDGES} from './metrics.js'
import type {EvalResult} from './evaluate.js'

export interface RenderedPlot {
  name: string
  title: string
  svg: string
  png: Uint8Array
}

type Spec = Record<string, unknown>

const COLORS: Record<string, string> = {truth: '#222222', model: '#d62728', persistence: '#7f7f7f', linear: '#1f77b4'}

/** A colour scale over the series actually present (so legends list only those). */
function seriesScale(values: Array<Record<string, unknown>>): {domain: string[]; range: string[]} {
  const present = new Set(values.map((v) => v.series as string))
  const domain = Object.keys(COLORS).filter((k) => present.has(k))
  return {domain, range: domain.map((k) => COLORS[k])}
}

/** SVG and PNG of a Vega-Lite spec. */
export async function renderVegaLite(spec: Spec, scale = 2): Promise<{svg: string; png: Uint8Array}> {
  const [vega, vl, {Resvg}] = await Promise.all([import('vega'), import('vega-lite'), import('@resvg/resvg-js')])
  // Modules never print: vega's warnings are silenced (the specs are ours and tested).
  const quiet = vega.logger(vega.None)
  const compiled = vl.compile({$schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: {font: 'DejaVu Sans, Arial, sans-serif'}, ...spec} as never, {logger: quiet}).spec
  const view = new vega.View(vega.parse(compiled), {renderer: 'none', logLevel: vega.None})
  try {
    const svg = await view.toSVG()
    const png = new Resvg(svg, {
      background: 'white',
      fitTo: {mode: 'zoom', value: scale},
      font: {loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans'},
    }).render().asPng()
    return {svg, png: new Uint8Array(png)}
  } finally {
    view.finalize()
  }
}

const positive = (v: number) => Number.isFinite(v) && v > 0

/** Prediction vs truth along the grid at a few rollout steps for the example trajectories. */
export function predictionsSpec(r: EvalResult): Spec {
  const values: Array<Record<string, unknown>> = []
  for (const ex of r.examples) {
    ex.steps.forEach((step, s) => {
      // Truth pushed last so it is drawn on top.
      const series: Array<[string, number[] | undefined]> = [['linear', ex.linear?.[s]], ['model', ex.model[s]], ['truth', ex.truth[s]]]
      for (const [name, line] of series) {
        if (!line) continue
        line.forEach((u, i) => values.push({sample: `sample ${ex.sample}`, step: `step ${step}`, stepIndex: step, x: ex.x[i], u, series: name}))
      }
    })
  }
  return {
    title: `${r.task} ${r.split}: rollout vs truth${r.grid.length > 1 ? ' (middle line of the grid)' : ''}`,
    data: {values},
    facet: {
      row: {field: 'sample', type: 'nominal', title: null},
      column: {field: 'step', type: 'ordinal', sort: {field: 'stepIndex'}, title: null},
    },
    spec: {
      width: 220,
      height: 130,
      mark: {type: 'line', strokeWidth: 1.5},
      encoding: {
        x: {field: 'x', type: 'quantitative', title: 'x'},
        y: {field: 'u', type: 'quantitative', title: 'u', scale: {zero: false}},
        color: {field: 'series', type: 'nominal', scale: seriesScale(values), title: null},
      },
    },
    resolve: {scale: {y: 'independent'}},
  }
}

/** nRMSE against rollout step, model vs baselines. */
export function rolloutErrorSpec(r: EvalResult): Spec {
  const values: Array<Record<string, unknown>> = []
  const add = (series: string, steps: number[]) => steps.forEach((v, k) => positive(v) && values.push({step: k + 1, nrmse: v, series}))
  add('model', r.model.rollout.nrmsePerStep)
  add('persistence', r.baselines.persistence.rollout.nrmsePerStep)
  if (!('skipped' in r.baselines.linear)) add('linear', r.baselines.linear.rollout.nrmsePerStep)
  return {
    title: `${r.task} ${r.split}: nRMSE over the rollout (${r.samples} trajectories)`,
    width: 480,
    height: 280,
    data: {values},
    mark: {type: 'line', point: true},
    encoding: {
      x: {field: 'step', type: 'quantitative', title: 'rollout step', axis: {tickMinStep: 1}},
      y: {field: 'nrmse', type: 'quantitative', title: 'nRMSE', scale: {type: 'log'}},
      color: {field: 'series', type: 'nominal', scale: seriesScale(values), title: null},
    },
  }
}

/** One-step error by spatial frequency (|DFT(error)_k| / n), band edges marked. */
export function spectrumSpec(r: EvalResult): Spec {
  const values: Array<Record<string, unknown>> = []
  const add = (series: string, spectrum: number[]) => spectrum.forEach((v, k) => positive(v) && values.push({k, error: v, series}))
  add('model', r.model.oneStep.spectrum)
  add('persistence', r.baselines.persistence.oneStep.spectrum)
  if (!('skipped' in r.baselines.linear)) add('linear', r.baselines.linear.oneStep.spectrum)
  const bands = r.model.oneStep.frmse
  return {
    title: `${r.task} ${r.split}: one-step error spectrum (fRMSE low ${fmt(bands.low)}, mid ${fmt(bands.mid)}, high ${fmt(bands.high)})`,
    width: 480,
    height: 280,
    layer: [
      {
        data: {values},
        mark: {type: 'line', strokeWidth: 1.5},
        encoding: {
          x: {field: 'k', type: 'quantitative', title: r.grid.length > 1 ? 'radial wavenumber' : 'wavenumber k', scale: {domain: [0, Math.max(1, r.model.oneStep.spectrum.length - 1)], nice: false}},
          y: {field: 'error', type: 'quantitative', title: '|DFT(error)| / n', scale: {type: 'log'}},
          color: {field: 'series', type: 'nominal', scale: seriesScale(values), title: null},
        },
      },
      {
        data: {values: DEFAULT_BAND_EDGES.map((k) => ({k}))},
        mark: {type: 'rule', strokeDash: [3, 3], color: '#999999'},
        encoding: {x: {field: 'k', type: 'quantitative'}},
      },
    ],
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(3) : String(v)
}

/** All evaluation plots, rendered. */
export async function renderEvalPlots(r: EvalResult): Promise<RenderedPlot[]> {
  const specs: Array<[string, string, Spec]> = [
    ['predictions', 'Rollout vs truth', predictionsSpec(r)],
    ['rollout_error', 'nRMSE over rollout steps', rolloutErrorSpec(r)],
    ['error_spectrum', 'One-step error spectrum', spectrumSpec(r)],
  ]
  const out: RenderedPlot[] = []
  for (const [name, title, spec] of specs) out.push({name, title, ...(await renderVegaLite(spec))})
  return out
}
