# Sourced by the Nsight Compute profiles (bench/scan_profile.sh, bench/attention_profile.sh): the
# counters they collect, which bench/peers/ncu_counters_table.py lays out, and two helpers.
#   NCU_COUNTERS    ncu --metrics list: time, launch shape and occupancy, issue slots, the pipes
#                   (tensor: wgmma and mma.sync; xu: exp2 etc.; fma; alu; lsu), shared memory,
#                   L2 traffic (reductions, reads, writes) and DRAM traffic, and the stall reasons
#                   per issued instruction
#   require_ncu NAME OUT      exits 2 (NAME: the caller) unless ncu is on the PATH; makes OUT
#   keep_ncu_rows CSV         CSV.log's ncu rows (they start with a quote) into CSV; else says why
#   profile_first_launch BUILD CSV OPS N REGEX   the counters of the first launch whose demangled
#                             name matches REGEX in `mixlab kernel_bench --ops=OPS --lengths=N`,
#                             ncu's log in CSV.log and its rows in CSV; fails if either step did
NCU_COUNTERS=gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,launch__registers_per_thread
NCU_COUNTERS+=,launch__shared_mem_per_block_dynamic,launch__grid_size,launch__block_size
NCU_COUNTERS+=,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem
NCU_COUNTERS+=,sm__maximum_warps_per_active_cycle_pct,sm__warps_active.avg.pct_of_peak_sustained_active
NCU_COUNTERS+=,sm__issue_active.avg.pct_of_peak_sustained_active
NCU_COUNTERS+=,"regex:sm__pipe_tensor_op_(gmma|hmma)_cycles_active\.avg\.pct_of_peak_sustained_active"
NCU_COUNTERS+=,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
NCU_COUNTERS+=,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active
NCU_COUNTERS+=,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed
NCU_COUNTERS+=,lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum
NCU_COUNTERS+=,lts__t_sectors_op_red.sum,lts__t_sectors_op_read.sum,lts__t_sectors_op_write.sum
NCU_COUNTERS+=,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum
NCU_COUNTERS+=,smsp__average_warp_latency_per_inst_issued.ratio,smsp__inst_executed.sum
NCU_COUNTERS+=,"regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"

require_ncu() {
  command -v ncu >/dev/null || { echo "$1: ncu (Nsight Compute) is not on the PATH" >&2; exit 2; }
  mkdir -p "$2"
}
keep_ncu_rows() {
  grep '^"' "$1.log" >"$1" || { tail -n 5 "$1.log"; return 1; }
}
profile_first_launch() {
  local status=0
  ncu --metrics "$NCU_COUNTERS" --csv --page raw --kernel-name-base demangled --kernel-name "regex:$5" \
    --launch-count 1 "$1/mixlab" kernel_bench /dev/null --ops="$3" --lengths="$4" >"$2.log" 2>&1 || status=1
  keep_ncu_rows "$2" || status=1
  return $status
}
