/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=2811;

--
-- Current Database: `a`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a`;

USE `a`;

--
-- Table structure for table `c`
--

CREATE TABLE `c` (
  `id` int(11) NOT NULL,
  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) REFERENCES `p` (`id`)
) ENGINE=InnoDB;

--
-- Dumping data for table `c`
--

INSERT INTO `c` VALUES (1,1);

--
-- Table structure for table `p`
--

CREATE TABLE `p` (`id` int(11) NOT NULL) ENGINE=InnoDB;
INSERT INTO `p` VALUES (1),(2);
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER a.tr AFTER INSERT ON a.p FOR EACH ROW INSERT INTO b.m VALUES (NEW.id+100) */;;
DELIMITER ;

--
-- Temporary table structure for view `v`
--

/*!50001 CREATE VIEW `v` AS SELECT
 NULL AS `id` */;

--
-- Current Database: `b`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `b`;

USE `b`;

--
-- Table structure for table `m`
--

CREATE TABLE `m` (`id` int(11) NOT NULL) ENGINE=MyISAM;
INSERT INTO `m` VALUES (5);

--
-- Current Database: `replication_manager_schema`
--

USE `replication_manager_schema`;

--
-- Table structure for table `jobs`
--

INSERT INTO `jobs` VALUES (7);

--
-- Current Database: `a`
--

USE `a`;

--
-- Final view structure for view `v`
--

/*!50001 VIEW `v` AS select `p`.`id` AS `id` from (`p` join `c`) */;

-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows
SET GLOBAL gtid_slave_pos='0-1-13';

-- Dump completed on 2026-11-26  8:44:36
