import type { TesseraClient } from './tessera-client.js';

/** The parts of an axios instance the adapter touches, so this file needs no axios import. */
export interface AxiosLike {
  interceptors: {
    request: { use(onFulfilled: (config: any) => any): number; eject(id: number): void };
    response: { use(onFulfilled: undefined, onRejected: (error: any) => any): number; eject(id: number): void };
  };
  request(config: any): Promise<any>;
}

/**
 * Adds Tessera to an axios instance: every request carries the access token, and a
 * 401 triggers one refresh and one retry of that request. Returns a function that
 * removes the interceptors.
 *
 * @example
 * const api = axios.create({ baseURL: '/api' });
 * const detach = withAxios(auth, api);
 */
export function withAxios(client: TesseraClient, axios: AxiosLike): () => void {
  const request = axios.interceptors.request.use(async (config) => {
    const token = await client.getAccessToken();
    if (token) {
      config.headers ??= {};
      if (typeof config.headers.set === 'function') config.headers.set('Authorization', `Bearer ${token}`);
      else config.headers.Authorization = `Bearer ${token}`;
    }
    return config;
  });
  const response = axios.interceptors.response.use(undefined, async (error) => {
    const config = error?.config;
    // One retry per request: a 401 that survives it is the API's answer, not an expired token.
    if (error?.response?.status !== 401 || !config || config.__tesseraRetried) throw error;
    config.__tesseraRetried = true;
    if (!(await client.refresh())) throw error;
    return axios.request(config);
  });
  return () => {
    axios.interceptors.request.eject(request);
    axios.interceptors.response.eject(response);
  };
}
