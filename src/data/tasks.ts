/**
 * What each task's files look like: its number of spatial dimensions decides the expected rank
 * of every layout. Names follow the upstream project (burgers1d_train_000.h5, ...).
 */
import {ExitCode, UserError} from '../util/errors.js'

export const KNOWN_TASKS: Record<string, {spatialDims: number; description: string}> = {
  burgers1d: {spatialDims: 1, description: '1D viscous Burgers'},
  advection1d: {spatialDims: 1, description: '1D linear advection'},
  diffreact1d: {spatialDims: 1, description: '1D diffusion-reaction'},
  diffsorp1d: {spatialDims: 1, description: '1D diffusion-sorption'},
  cfd1d: {spatialDims: 1, description: '1D compressible Navier-Stokes'},
  cfd2d: {spatialDims: 2, description: '2D compressible Navier-Stokes'},
  ns2d: {spatialDims: 2, description: '2D incompressible Navier-Stokes'},
  swe2d: {spatialDims: 2, description: '2D shallow water'},
  diffreact2d: {spatialDims: 2, description: '2D diffusion-reaction'},
  darcy2d: {spatialDims: 2, description: '2D Darcy flow'},
}

/** The splits a data root may hold; `valid` is PDEBench's spelling of `val`. */
export const SPLITS = ['train', 'val', 'valid', 'test'] as const
export type Split = (typeof SPLITS)[number]

/** Spatial dimensions for a task: from the table, else from a `...1d`/`...2d`/`...3d` suffix. */
export function taskSpatialDims(task: string): number {
  const known = KNOWN_TASKS[task]
  if (known) return known.spatialDims
  const m = /([123])d$/i.exec(task)
  if (m) return Number(m[1])
  throw new UserError(`Unknown task "${task}": cannot tell how many spatial dimensions its data has.`, {
    code: 'DATA_UNKNOWN_TASK',
    hint: `Use one of ${Object.keys(KNOWN_TASKS).join(', ')}, or a name ending in 1d/2d/3d.`,
    exitCode: ExitCode.USAGE,
  })
}

export function checkSplit(split: string): Split {
  if ((SPLITS as readonly string[]).includes(split)) return split as Split
  throw new UserError(`Unknown split "${split}".`, {
    code: 'DATA_UNKNOWN_SPLIT',
    hint: `Use one of ${SPLITS.join(', ')}.`,
    exitCode: ExitCode.USAGE,
  })
}
