/**
 * The file names of the PDEBench release (its pdebench_data_urls.csv), per task: a data root that
 * holds one of these as downloaded is read directly and split by sample index (split.ts), with no
 * renaming. Several matches for one task (Burgers at ten viscosities) must be chosen with data.file.
 */
export const RAW_FILE_PATTERNS: Record<string, {pattern: RegExp; example: string}> = {
  burgers1d: {pattern: /^1D_Burgers_Sols_Nu[0-9.]+\.hdf5$/, example: '1D_Burgers_Sols_Nu0.01.hdf5'},
  advection1d: {pattern: /^1D_Advection_Sols_beta[0-9.]+\.hdf5$/, example: '1D_Advection_Sols_beta0.1.hdf5'},
  // The Train folder's ReacDiff_Nu*_Rho* and the Test folder's ReacDiff_react_Nu*_Rho*.
  diffreact1d: {pattern: /^ReacDiff_(react_)?Nu[0-9.]+_Rho[0-9.]+\.hdf5$/, example: 'ReacDiff_Nu0.5_Rho1.0.hdf5'},
  diffsorp1d: {pattern: /^1D_diff-sorp_NA_NA\.h5$/, example: '1D_diff-sorp_NA_NA.h5'},
  cfd1d: {pattern: /^1D_CFD_.+_Train\.hdf5$/, example: '1D_CFD_Rand_Eta0.01_Zeta0.01_periodic_Train.hdf5'},
  cfd2d: {pattern: /^2D_CFD_.+_Train\.hdf5$/, example: '2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_128_Train.hdf5'},
  ns2d: {pattern: /^ns_incom_inhom_2d_512-\d+\.h5$/, example: 'ns_incom_inhom_2d_512-0.h5'},
  swe2d: {pattern: /^2D_rdb_NA_NA\.h5$/, example: '2D_rdb_NA_NA.h5'},
  diffreact2d: {pattern: /^2D_diff-react_NA_NA\.h5$/, example: '2D_diff-react_NA_NA.h5'},
  darcy2d: {pattern: /^2D_DarcyFlow_beta[0-9.]+_Train\.hdf5$/, example: '2D_DarcyFlow_beta1.0_Train.hdf5'},
  cfd3d: {pattern: /^3D_CFD_.+_Train\.hdf5$/, example: '3D_CFD_Rand_M1.0_Eta1e-08_Zeta1e-08_periodic_Train.hdf5'},
}

/** The names among `names` that are PDEBench release files of `task`, sorted. */
export function rawCandidates(names: string[], task: string): string[] {
  const p = RAW_FILE_PATTERNS[task]?.pattern
  return p ? names.filter((n) => p.test(n)).sort() : []
}
