import type { TesseraClient } from './tessera-client.js';

/** The parts of an axios instance the adapter touches, so this file needs no axios import. */
export interface AxiosLike {
  interceptors: {
    request: { use(onFulfilled: (config: any) => any): number; eject(id: number): void };
    response: { use(onFulfilled: (response: any) => any, onRejected: (error: any) => any): number; eject(id: number): void };
  };
  request(config: any): Promise<any>;
}

/**
 * Adds Tessera to an axios instance: every request carries the access token, and a
 * 401 triggers one refresh and one retry of that request, with the same rules as
 * `client.fetch`. Returns a function that removes the interceptors.
 *
 * @example
 * const api = axios.create({ baseURL: '/api' });
 * const detach = withAxios(auth, api);
 */
export function withAxios(client: TesseraClient, axios: AxiosLike): () => void {
  const request = axios.interceptors.request.use(async (config) => {
    const token = await client.getAccessToken();
    if (token) setAuthorization(config, token);
    return config;
  });
  const response = axios.interceptors.response.use(
    (res) => {
      client.noteAuthorized();
      return res;
    },
    async (error) => {
      const config = error?.config;
      // One retry per request: a 401 that survives it is the API's answer, not an expired token.
      if (error?.response?.status !== 401 || !config || config.__tesseraRetried) throw error;
      const used = /^Bearer (.+)$/.exec(String(getAuthorization(config) ?? ''))?.[1] ?? null;
      const token = await client.tokenAfter401(used);
      if (!token) throw error;
      config.__tesseraRetried = true;
      setAuthorization(config, token);
      return axios.request(config);
    },
  );
  return () => {
    axios.interceptors.request.eject(request);
    axios.interceptors.response.eject(response);
  };
}

// axios 1.x has AxiosHeaders with get/set; plain objects work too.
function setAuthorization(config: any, token: string) {
  config.headers ??= {};
  if (typeof config.headers.set === 'function') config.headers.set('Authorization', `Bearer ${token}`);
  else config.headers.Authorization = `Bearer ${token}`;
}

function getAuthorization(config: any): unknown {
  return typeof config.headers?.get === 'function' ? config.headers.get('Authorization') : config.headers?.Authorization;
}
