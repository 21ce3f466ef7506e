/**
 * Charts without a browser: a vega-lite spec is compiled to vega, rendered headless to SVG
 * (vega's View.toSVG) and rasterised to PNG with resvg. Shared by analyze, benchmarks and eval
 * plots. vega, vega-lite and resvg are loaded lazily: they are heavy and most commands never plot.
 */
import type {TopLevelSpec} from 'vega-lite'

import {writeFileAtomic} from '../util/fs.js'

export interface Point {
  x: number
  y: number
}

export interface Series {
  name: string
  points: Point[]
}

/** A shaded horizontal band, e.g. the healthy range of a metric. */
export interface Band {
  from: number
  to: number
  label: string
  color?: string
}

export interface LineChartOptions {
  title: string
  xTitle?: string
  yTitle?: string
  /** Log y axis (points with y <= 0 are left out, as a log scale cannot show them). */
  logY?: boolean
  width?: number
  height?: number
  bands?: Band[]
}

export interface RenderedChart {
  svg: string
  png: Uint8Array
}

/** A multi-series line chart as a vega-lite spec (non-finite points dropped). */
export function lineChartSpec(series: Series[], options: LineChartOptions): TopLevelSpec {
  const values = series.flatMap((s) =>
    s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!options.logY || p.y > 0)).map((p) => ({series: s.name, x: p.x, y: p.y})),
  )
  const yScale = options.logY ? {type: 'log' as const} : {zero: false}
  const line = {
    data: {values},
    mark: {type: 'line' as const, point: values.length <= 60, strokeWidth: 1.5},
    encoding: {
      x: {field: 'x', type: 'quantitative' as const, title: options.xTitle ?? 'step'},
      y: {field: 'y', type: 'quantitative' as const, title: options.yTitle ?? '', scale: yScale},
      color: {field: 'series', type: 'nominal' as const, title: null},
    },
  }
  const bands = (options.bands ?? []).map((b) => ({
    data: {values: [{from: b.from, to: b.to, label: b.label}]},
    mark: {type: 'rect' as const, opacity: 0.12, color: b.color ?? '#2ca02c'},
    encoding: {y: {field: 'from', type: 'quantitative' as const, scale: yScale}, y2: {field: 'to'}},
  }))
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: options.width ?? 640,
    height: options.height ?? 320,
    background: 'white',
    layer: [...bands, line],
  } as TopLevelSpec
}

/** Renders any vega-lite spec to SVG text and PNG bytes. */
export async function renderChart(spec: TopLevelSpec, options: {scale?: number} = {}): Promise<RenderedChart> {
  const [vl, vega, {Resvg}] = await Promise.all([import('vega-lite'), import('vega'), import('@resvg/resvg-js')])
  const compiled = vl.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), {renderer: 'none'})
  try {
    const svg = await view.toSVG()
    const png = new Resvg(svg, {fitTo: {mode: 'zoom', value: options.scale ?? 2}, font: {loadSystemFonts: true}}).render().asPng()
    return {svg, png: new Uint8Array(png)}
  } finally {
    view.finalize()
  }
}

/** Renders a spec and writes `<base>.svg` and `<base>.png` atomically; returns both paths. */
export async function writeChart(base: string, spec: TopLevelSpec): Promise<{svg: string; png: string}> {
  const chart = await renderChart(spec)
  const paths = {svg: `${base}.svg`, png: `${base}.png`}
  await writeFileAtomic(paths.svg, chart.svg)
  await writeFileAtomic(paths.png, chart.png)
  return paths
}
