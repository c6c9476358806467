# Written by `mixlab report`.  Run: gnuplot scaling_state_bytes.gp
# Data: scaling_state_bytes.dat (one block per configuration)
set encoding utf8
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'
set output "scaling_state_bytes.png"
set title "Inference state (analytic) vs sequence length" noenhanced
set xlabel "sequence length N (tokens)" noenhanced
set ylabel "Inference state (analytic) (MiB)" noenhanced
set key outside right top box opaque spacing 1.2
set grid xtics ytics lc rgb '#dddddd'
set border 3 lw 1.2
set tics nomirror
set logscale x 2
set logscale y 10
set ytics ('10' 10, '100' 100, '1000' 1000, '10000' 10000)
set xtics ('2k' 2048, '4k' 4096, '8k' 8192, '16k' 16384, '32k' 32768)
set xrange [1833.011345:36611.26494]
set yrange [6.079542727:81795.62548]
y_top = 81795.62548  # failed sizes are drawn here, on the upper edge
plot "scaling_state_bytes.dat" index 0 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#D55E00' title "mamba-1.3b n=16 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 1 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#009E73' title "mamba-1.3b n=16 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 2 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#CC79A7' title "mamba-1.3b n=16 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 3 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 1 lc rgb '#E69F00' title "mamba-546m n=16" noenhanced, \
     "scaling_state_bytes.dat" index 4 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 1 lc rgb '#56B4E9' title "mamba-546m n=16 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 5 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#000000' title "mamba-546m n=16 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 6 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#8C564B' title "mamba-546m n=16 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 7 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#BCBD22' title "qwen2-1.36b batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 8 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 2 lc rgb '#0072B2' title "qwen2-1.36b batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 9 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 2 lc rgb '#D55E00' title "qwen2-1.36b batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 10 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 2 lc rgb '#009E73' title "qwen2-340m" noenhanced, \
     "scaling_state_bytes.dat" index 11 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 2 lc rgb '#CC79A7' title "qwen2-340m batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 12 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 2 lc rgb '#E69F00' title "qwen2-340m batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 13 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 2 lc rgb '#56B4E9' title "qwen2-340m batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 14 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 2 lc rgb '#000000' title "qwen2-alternate-swa-366m W=2048" noenhanced, \
     "scaling_state_bytes.dat" index 15 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 2 lc rgb '#8C564B' title "qwen2-alternate-swa-366m W=2048 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 16 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 2 lc rgb '#7F7F7F' title "qwen2-alternate-swa-366m W=2048 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 17 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 2 lc rgb '#BCBD22' title "qwen2-alternate-swa-366m W=2048 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 18 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 3 lc rgb '#0072B2' title "scout-mamba-1.59b n=16 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 19 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 3 lc rgb '#D55E00' title "scout-mamba-1.59b n=16 S=10 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 20 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 3 lc rgb '#009E73' title "scout-mamba-1.59b n=16 S=10 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 21 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 3 lc rgb '#CC79A7' title "scout-mamba-1.59b n=16 S=10 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 22 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 3 lc rgb '#E69F00' title "scout-mamba-430m n=16 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 23 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 3 lc rgb '#56B4E9' title "scout-mamba-430m n=16 S=10 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 24 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 3 lc rgb '#000000' title "scout-mamba-430m n=16 S=10 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 25 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 3 lc rgb '#8C564B' title "scout-mamba-430m n=16 S=10 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 26 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 3 lc rgb '#7F7F7F' title "scout-swa-1.57b W=1024 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 27 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 3 lc rgb '#BCBD22' title "scout-swa-1.57b W=1024 S=10 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 28 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 4 lc rgb '#0072B2' title "scout-swa-1.57b W=1024 S=10 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 29 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 4 lc rgb '#D55E00' title "scout-swa-1.57b W=1024 S=10 batch=4" noenhanced, \
     "scaling_state_bytes.dat" index 30 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 4 lc rgb '#009E73' title "scout-swa-470m W=1024 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 31 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 4 lc rgb '#CC79A7' title "scout-swa-470m W=1024 S=10 batch=1" noenhanced, \
     "scaling_state_bytes.dat" index 32 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 4 lc rgb '#E69F00' title "scout-swa-470m W=1024 S=10 batch=2" noenhanced, \
     "scaling_state_bytes.dat" index 33 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 4 lc rgb '#56B4E9' title "scout-swa-470m W=1024 S=10 batch=4" noenhanced
set output
set terminal svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'
set output "scaling_state_bytes.svg"
replot
set output
set terminal pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'
set output "scaling_state_bytes.pdf"
replot
set output
