# Written by `mixlab report`.  Run: gnuplot scaling_prefill_peak_memory.gp
# Data: scaling_prefill_peak_memory.dat (one block per configuration)
set encoding utf8
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'
set output "scaling_prefill_peak_memory.png"
set title "Peak memory, prefill vs sequence length" noenhanced
set xlabel "sequence length N (tokens)" noenhanced
set ylabel "Peak memory, prefill (MiB)" noenhanced
set key outside right top box opaque spacing 1.2
set grid xtics ytics lc rgb '#dddddd'
set border 3 lw 1.2
set tics nomirror
set logscale x 2
set logscale y 10
set ytics ('2000' 2000, '3000' 3000, '4000' 4000, '5000' 5000, '6000' 6000, '7000' 7000, '8000' 8000, '9000' 9000, '10000' 10000, '20000' 20000)
set xtics ('2k' 2048, '4k' 4096, '8k' 8192, '16k' 16384)
set xrange [1884.544308:17805.06399]
set yrange [1638.590704:22841.89188]
y_top = 22841.89188  # failed sizes are drawn here, on the upper edge
plot "scaling_prefill_peak_memory.dat" index 0 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#D55E00' title "mamba-1.3b n=16 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 1 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#009E73' title "mamba-1.3b n=16 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 2 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#CC79A7' title "mamba-1.3b n=16 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 3 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 1 lc rgb '#56B4E9' title "mamba-546m n=16 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 4 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#000000' title "mamba-546m n=16 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 5 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#8C564B' title "mamba-546m n=16 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 6 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#BCBD22' title "qwen2-1.36b batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 7 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 2 lc rgb '#0072B2' title "qwen2-1.36b batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 8 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 2 lc rgb '#D55E00' title "qwen2-1.36b batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 9 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 2 lc rgb '#CC79A7' title "qwen2-340m batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 10 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 2 lc rgb '#E69F00' title "qwen2-340m batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 11 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 2 lc rgb '#56B4E9' title "qwen2-340m batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 12 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 2 lc rgb '#8C564B' title "qwen2-alternate-swa-366m W=2048 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 13 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 2 lc rgb '#7F7F7F' title "qwen2-alternate-swa-366m W=2048 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 14 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 2 lc rgb '#BCBD22' title "qwen2-alternate-swa-366m W=2048 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 15 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 3 lc rgb '#D55E00' title "scout-mamba-1.59b n=16 S=10 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 16 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 3 lc rgb '#009E73' title "scout-mamba-1.59b n=16 S=10 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 17 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 3 lc rgb '#CC79A7' title "scout-mamba-1.59b n=16 S=10 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 18 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 3 lc rgb '#56B4E9' title "scout-mamba-430m n=16 S=10 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 19 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 3 lc rgb '#000000' title "scout-mamba-430m n=16 S=10 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 20 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 3 lc rgb '#8C564B' title "scout-mamba-430m n=16 S=10 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 21 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 3 lc rgb '#BCBD22' title "scout-swa-1.57b W=1024 S=10 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 22 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 4 lc rgb '#0072B2' title "scout-swa-1.57b W=1024 S=10 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 23 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 4 lc rgb '#D55E00' title "scout-swa-1.57b W=1024 S=10 batch=4" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 24 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 4 lc rgb '#CC79A7' title "scout-swa-470m W=1024 S=10 batch=1" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 25 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 4 lc rgb '#E69F00' title "scout-swa-470m W=1024 S=10 batch=2" noenhanced, \
     "scaling_prefill_peak_memory.dat" index 26 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 4 lc rgb '#56B4E9' title "scout-swa-470m W=1024 S=10 batch=4" noenhanced
set output
set terminal svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'
set output "scaling_prefill_peak_memory.svg"
replot
set output
set terminal pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'
set output "scaling_prefill_peak_memory.pdf"
replot
set output
