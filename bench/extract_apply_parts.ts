/**
 * What `bench/extract_apply.ts --bundled` times, as one entry point: bundled
 * the way the daemon is shipped (build/bundle.ts), so that the bundle's own
 * costs (esbuild's keepNames naming every named closure) are measured too.
 *
 * @module
 */
export { imagesFromWorkflowTemplate } from "../sources/argo_images.ts";
export { imagesFromConfigMap } from "../sources/configmap_images.ts";
export { DesiredImages } from "../images/desired_images.ts";
export { TagLedger } from "../ledger/tag_ledger.ts";
