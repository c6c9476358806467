# Written by `mixlab report`.  Run: gnuplot scaling_decode_ms.gp
# Data: scaling_decode_ms.dat (one block per configuration), error bars ± one standard deviation; scaling_decode_ms_samples.dat: the repeats
set encoding utf8
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'
set output "scaling_decode_ms.png"
set title "Decode step latency vs sequence length" noenhanced
set xlabel "context length N (tokens)" noenhanced
set ylabel "Decode step latency (ms)" noenhanced
set key outside right top box opaque spacing 1.2
set grid xtics ytics lc rgb '#dddddd'
set border 3 lw 1.2
set tics nomirror
set logscale x 2
set logscale y 10
set ytics ('2' 2, '5' 5, '10' 10, '20' 20)
set xtics ('2k' 2048, '4k' 4096, '8k' 8192, '16k' 16384, '32k' 32768)
set xrange [1833.011345:36611.26494]
set yrange [1.533695837:28.30325553]
y_top = 28.30325553  # failed sizes are drawn here, on the upper edge
plot "scaling_decode_ms.dat" index 0 using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.1 dt 1 lc rgb '#0072B2' title "mamba-1.3b n=16" noenhanced, \
     "scaling_decode_ms_samples.dat" index 0 using 1:2 with points pt 7 ps 0.3 lc rgb '#0072B2' notitle, \
     "scaling_decode_ms.dat" index 1 using 1:2:3:4 with yerrorlines lw 2 pt 5 ps 1.1 dt 1 lc rgb '#D55E00' title "mamba-546m n=16" noenhanced, \
     "scaling_decode_ms_samples.dat" index 1 using 1:2 with points pt 7 ps 0.3 lc rgb '#D55E00' notitle, \
     "scaling_decode_ms.dat" index 2 using 1:2:3:4 with yerrorlines lw 2 pt 9 ps 1.1 dt 1 lc rgb '#009E73' title "qwen2-1.36b" noenhanced, \
     "scaling_decode_ms_samples.dat" index 2 using 1:2 with points pt 7 ps 0.3 lc rgb '#009E73' notitle, \
     "scaling_decode_ms.dat" index 3 using 1:2:3:4 with yerrorlines lw 2 pt 13 ps 1.1 dt 1 lc rgb '#CC79A7' title "qwen2-340m" noenhanced, \
     "scaling_decode_ms_samples.dat" index 3 using 1:2 with points pt 7 ps 0.3 lc rgb '#CC79A7' notitle, \
     "scaling_decode_ms.dat" index 4 using 1:2:3:4 with yerrorlines lw 2 pt 11 ps 1.1 dt 1 lc rgb '#E69F00' title "qwen2-alternate-swa-366m W=2048" noenhanced, \
     "scaling_decode_ms_samples.dat" index 4 using 1:2 with points pt 7 ps 0.3 lc rgb '#E69F00' notitle, \
     "scaling_decode_ms.dat" index 5 using 1:2:3:4 with yerrorlines lw 2 pt 15 ps 1.1 dt 1 lc rgb '#56B4E9' title "scout-mamba-1.59b n=16 S=10" noenhanced, \
     "scaling_decode_ms_samples.dat" index 5 using 1:2 with points pt 7 ps 0.3 lc rgb '#56B4E9' notitle, \
     "scaling_decode_ms.dat" index 6 using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.1 dt 1 lc rgb '#000000' title "scout-mamba-430m n=16 S=10" noenhanced, \
     "scaling_decode_ms_samples.dat" index 6 using 1:2 with points pt 7 ps 0.3 lc rgb '#000000' notitle, \
     "scaling_decode_ms.dat" index 7 using 1:2:3:4 with yerrorlines lw 2 pt 5 ps 1.1 dt 1 lc rgb '#8C564B' title "scout-swa-1.57b W=1024 S=10" noenhanced, \
     "scaling_decode_ms_samples.dat" index 7 using 1:2 with points pt 7 ps 0.3 lc rgb '#8C564B' notitle, \
     "scaling_decode_ms.dat" index 8 using 1:2:3:4 with yerrorlines lw 2 pt 9 ps 1.1 dt 1 lc rgb '#7F7F7F' title "scout-swa-470m W=1024 S=10" noenhanced, \
     "scaling_decode_ms_samples.dat" index 8 using 1:2 with points pt 7 ps 0.3 lc rgb '#7F7F7F' notitle
set output
set terminal svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'
set output "scaling_decode_ms.svg"
replot
set output
set terminal pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'
set output "scaling_decode_ms.pdf"
replot
set output
