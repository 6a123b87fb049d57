/* The embedded default config of `tlsgate run` without -c (files relative to the state dir). */
#include "config/config.h"

/* Loaded with base_dir = the state directory, after tg_cert_ensure_default() made the keystore
 * files there (and the admin API's admin.crt, admin.key and admin.hash). Keep it in step with
 * SPEC.md "Embedded default" and docs/config.md. */
const char tg_config_default_json[] =
    "{\n"
    "  \"version\": 1,\n"
    "  \"workers\": \"auto\",\n"
    "  \"log\": {\"level\": \"info\", \"format\": \"text\", \"access_log\": \"stdout\"},\n"
    "  \"keystores\": {\n"
    "    \"default\": {\"type\": \"pem\", \"cert\": \"default.crt\", \"key\": \"default.key\"},\n"
    "    \"admin\": {\"type\": \"pem\", \"cert\": \"admin.crt\", \"key\": \"admin.key\"}\n"
    "  },\n"
    "  \"listeners\": [\n"
    "    {\n"
    "      \"name\": \"default\",\n"
    "      \"address\": \"127.0.0.1:8443\",\n"
    "      \"mode\": \"http\",\n"
    "      \"tls\": {\"certificates\": [\"default\"]},\n"
    "      \"routes\": [{\"path_prefix\": \"/\", \"backend\": \"status\"}]\n"
    "    }\n"
    "  ],\n"
    "  \"backends\": {\"status\": {\"builtin\": \"status\"}},\n"
    "  \"admin\": {\n"
    "    \"address\": \"127.0.0.1:9443\",\n"
    "    \"tls\": {\"certificates\": [\"admin\"]},\n"
    "    \"users\": [{\"name\": \"admin\", \"password_hash\": {\"file\": \"admin.hash\"}}]\n"
    "  }\n"
    "}\n";
