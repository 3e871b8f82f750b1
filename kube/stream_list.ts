/**
 * One page of a Kubernetes list, read item by item as its bytes arrive,
 * through client-node's own transport and authentication.
 *
 * @module
 */
import {
  ApiException,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  type KubernetesObject,
  ServerConfiguration,
} from "@kubernetes/client-node";
import { VERSION } from "../config/version.ts";
import { REQUEST_TIMEOUT_MS, withTimeout } from "./client.ts";
import { JsonListSplitter } from "./json_list_splitter.ts";

/** Query parameters of one list request. */
export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
}

/** What a list page says besides its items. */
export interface ListMeta {
  readonly resourceVersion: string;
  readonly continueToken?: string;
}

/** Options for {@linkcode streamList}. */
export interface StreamListOptions {
  /** Longest time for the whole page, headers and body. @default {REQUEST_TIMEOUT_MS} */
  timeoutMs?: number;
  /**
   * Called with the page's metadata as soon as it is read, before the items
   * when the list puts `metadata` first (the API server does so for built-in
   * types; a custom resource's list, an unstructured map with sorted keys,
   * has it last), so the next page can be asked for while this one streams.
   * When the metadata comes last, the page's items are only split while its
   * bytes arrive; `onMeta` is called once they all have, and the items are
   * parsed and handed over after it, so the server encodes the next page
   * while this one is parsed (at most one page's text is held). Not called
   * for a page without metadata.
   */
  onMeta?: (meta: ListMeta) => void;
  /**
   * When given, each item's UTF-8 bytes go here instead of being parsed (the
   * caller parses them, on another thread for one); the array is valid only
   * during the call. A promise it returns holds the reading of further bytes
   * until it settles. With it, items are never held back for the metadata:
   * they cost this thread only their splitting.
   */
  onItemBytes?: (bytes: Uint8Array) => void | Promise<void>;
}

const transport = new IsomorphicFetchHttpLibrary();

/** How long parsing a read page's items runs before the network gets a turn, ms. */
const YIELD_EVERY_MS = 10;

/**
 * Lists one page of the collection at `path` (such as `/api/v1/configmaps`),
 * calling `onItem` with each object as soon as its bytes have arrived, before
 * the next one is parsed, and returns the list's metadata.
 *
 * The request is made exactly as client-node's typed APIs make theirs: a
 * `RequestContext` for the current cluster's server, authenticated by
 * `kc.applySecurityAuthentication` (bearer tokens, refreshed token files and
 * exec plugins, client certificates, the cluster's CA, `insecure-skip-tls-verify`,
 * and the pooled connections of `reuseConnections`), sent by client-node's
 * own HTTP library. Only the response body is read differently: as a stream,
 * split into items by {@linkcode JsonListSplitter}, instead of one
 * `JSON.parse` of the whole page.
 *
 * @throws {ApiException} for a non-2xx answer, with the status code, the
 *   response body as text and the headers, as client-node's APIs throw it.
 * @throws {SyntaxError} when the body is not a list object.
 */
export async function streamList(
  kc: KubeConfig,
  path: string,
  query: ListQuery,
  onItem: (obj: KubernetesObject) => void,
  options: StreamListOptions = {},
): Promise<ListMeta> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TypeError("The kubeconfig has no current cluster");
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const context = new ServerConfiguration(cluster.server, {}).makeRequestContext(
    path,
    HttpMethod.GET,
  );
  context.setHeaderParam("Accept", "application/json");
  context.setHeaderParam("User-Agent", `image-cache-daemon/${VERSION}`);
  if (query.labelSelector) context.setQueryParam("labelSelector", query.labelSelector);
  if (query.fieldSelector) context.setQueryParam("fieldSelector", query.fieldSelector);
  if (query.limit !== undefined) context.setQueryParam("limit", String(query.limit));
  if (query.continueToken) context.setQueryParam("continue", query.continueToken);
  if (query.resourceVersion !== undefined) {
    context.setQueryParam("resourceVersion", query.resourceVersion);
  }
  let abandoned = false;
  const read = async (): Promise<ListMeta> => {
    await kc.applySecurityAuthentication(context);
    const response = await transport.send(context).toPromise();
    if (response.httpStatusCode < 200 || response.httpStatusCode > 299) {
      const body = await response.body.text();
      throw new ApiException(
        response.httpStatusCode,
        `Cannot list ${path}`,
        body,
        response.headers,
      );
    }
    const { onMeta, onItemBytes } = options;
    // Items whose parsing waits for the page's end: see below.
    let held: string[] | undefined = onMeta && !onItemBytes ? [] : undefined;
    // What the last item handed over asks to wait for before reading on.
    let wait: Promise<void> | undefined;
    const splitter = new JsonListSplitter((text) => {
      if (held) held.push(text);
      else onItem(JSON.parse(text));
    }, {
      onItemBytes: onItemBytes && ((bytes) => {
        const later = onItemBytes(bytes);
        if (later instanceof Promise) wait = later;
      }),
      onArrayStart: onMeta && ((before) => {
        const meta = listMetaOf(JSON.parse(before));
        if (meta.resourceVersion === "") return;
        // The continue token came first: the next page is on its way while
        // this one's items are parsed as they arrive.
        held = undefined;
        onMeta(meta);
      }),
    });
    const stream = response.body.stream() as ReadableStream<Uint8Array> | undefined;
    if (!stream) throw new SyntaxError(`Empty list response from ${path}`);
    for await (const chunk of stream) {
      // Timed out: stop reading (this cancels the body) and hand out nothing more.
      if (abandoned) break;
      splitter.push(chunk);
      if (wait) {
        await wait;
        wait = undefined;
      }
    }
    const rest = JSON.parse(splitter.end()) as {
      items?: unknown;
      metadata?: { resourceVersion?: string; continue?: string };
    };
    if (rest.items !== undefined && rest.items !== null && !Array.isArray(rest.items)) {
      throw new SyntaxError(`List response from ${path} has no items array`);
    }
    const meta = listMetaOf(rest);
    if (held && held.length > 0 && onMeta) {
      // The token came last (a custom resource's list): the page's bytes are
      // read, its items only split. Ask for the next page first, then parse
      // these while the server encodes that one, instead of one after the
      // other. Each item's text is dropped once parsed.
      onMeta(meta);
      const items = held;
      held = undefined;
      let since = performance.now();
      for (let i = 0; i < items.length && !abandoned; i++) {
        const text = items[i];
        items[i] = "";
        onItem(JSON.parse(text));
        if (performance.now() - since >= YIELD_EVERY_MS) {
          // Let the next page's request out and its bytes in; only a timer
          // turn of the event loop polls the network on this runtime.
          await new Promise((resolve) => setTimeout(resolve, 0));
          since = performance.now();
        }
      }
    }
    return meta;
  };
  // Why the race as well as the request's own signal: a body that stalls
  // mid-way is never reported on this runtime (see boundRequests).
  try {
    return await withTimeout(read(), timeoutMs, `list ${path}`);
  } finally {
    abandoned = true;
  }
}

/** What a list object says besides its items. Pure. */
function listMetaOf(
  list: { metadata?: { resourceVersion?: string; continue?: string } },
): ListMeta {
  return {
    resourceVersion: list.metadata?.resourceVersion ?? "",
    continueToken: list.metadata?.continue || undefined,
  };
}
