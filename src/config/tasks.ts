/**
 * The PDEBench tasks ups knows: spatial dimensions, the native grid of the PDEBench files,
 * channels, and whether the built-in generator can make the data.
 */
export interface TaskInfo {
  dims: 1 | 2
  /** Spatial grid points per dimension in the PDEBench release. */
  grid: number[]
  channels: number
  generator: boolean
  description: string
}

export const TASKS: Record<string, TaskInfo> = {
  burgers1d: {dims: 1, grid: [1024], channels: 1, generator: true, description: '1D viscous Burgers'},
  advection1d: {dims: 1, grid: [1024], channels: 1, generator: true, description: '1D linear advection'},
  reaction_diffusion1d: {dims: 1, grid: [1024], channels: 1, generator: false, description: '1D reaction-diffusion'},
  diffusion_sorption1d: {dims: 1, grid: [1024], channels: 1, generator: false, description: '1D diffusion-sorption'},
  cns1d: {dims: 1, grid: [1024], channels: 3, generator: false, description: '1D compressible Navier-Stokes'},
  navier_stokes2d: {dims: 2, grid: [128, 128], channels: 4, generator: false, description: '2D compressible Navier-Stokes'},
  darcy2d: {dims: 2, grid: [128, 128], channels: 1, generator: false, description: '2D Darcy flow'},
  shallow_water2d: {dims: 2, grid: [128, 128], channels: 1, generator: false, description: '2D shallow water'},
  diffusion_reaction2d: {dims: 2, grid: [128, 128], channels: 2, generator: false, description: '2D diffusion-reaction'},
}

export const TASK_NAMES = Object.keys(TASKS)
