// With the MTP module (~14B more: its own embedding and head copies, eh_proj
// and one MoE decoder layer) the total is the 685B of the released
// checkpoint. JSON output for scripts.
// RUN: dscc stats models/deepseek_v3.dsl --set mtp=true --json
// CHECK: "kind":	"mtp",
// CHECK-NEXT: "params":	13463426304,
// CHECK: "total":
// CHECK-NEXT: "kind":	"total",
// CHECK-NEXT: "params":	684489845504,
// CHECK-NEXT: "active_params_per_token":	40093756160,
// CHECK: "kv_bytes_per_token":	71424,
