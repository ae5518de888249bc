// One place that prepares zod/mini for the whole code base. zod/mini keeps bundles small
// because it loads no locale by default; without one every issue reads "Invalid input".
// Every module that defines schemas imports this file for its effect.
// English messages ("Too big: expected string to have <=255 characters") are part of the
// answer a producer gets, so they are loaded here, once, before any schema is used.

import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

z.config(en());
