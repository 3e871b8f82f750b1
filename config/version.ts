/** The daemon's version, also the default warden image tag. */
export const VERSION = "0.1.0";
